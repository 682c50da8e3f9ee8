// bf16_round.h (private to CKernels): Float32 to bf16 bits as PyTorch rounds
// (to nearest even; a NaN stays a quiet NaN), one value and sixteen at a time.
#ifndef FACTSWEEP_BF16_ROUND_H
#define FACTSWEEP_BF16_ROUND_H

#include <stdint.h>
#include <string.h>

#include "widest.h"

static inline uint16_t bf16_bits(float x) {
    uint32_t bits;
    memcpy(&bits, &x, sizeof bits);
    uint32_t rounded = (bits + 0x7FFFu + ((bits >> 16) & 1u)) >> 16;
    return (uint16_t)((bits & 0x7FFFFFFFu) > 0x7F800000u ? (bits >> 16) | 0x40u : rounded);
}

/// The Float32 a bf16 value stands for (exact).
static inline float bf16_float(uint16_t bits) {
    uint32_t wide = (uint32_t)bits << 16;
    float x;
    memcpy(&x, &wide, sizeof x);
    return x;
}

#ifdef FACTSWEEP_X86_PATHS
#include <immintrin.h>

/// 16 Floats to their bf16 bits, rounded as bf16_bits rounds one, in integer
/// arithmetic (the CPU's own vcvtneps2bf16 flushes subnormal inputs to zero).
__attribute__((target("avx512f"))) static inline __m256i bf16_bits16(__m512 x) {
    __m512i bits = _mm512_castps_si512(x);
    __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(bits, 16), _mm512_set1_epi32(1));
    __m512i rounded = _mm512_srli_epi32(_mm512_add_epi32(_mm512_add_epi32(bits, _mm512_set1_epi32(0x7FFF)), lsb), 16);
    __m512i quiet = _mm512_or_si512(_mm512_srli_epi32(bits, 16), _mm512_set1_epi32(0x40));
    __mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(bits, _mm512_set1_epi32(0x7FFFFFFF)),
                                            _mm512_set1_epi32(0x7F800000));
    return _mm512_cvtepi32_epi16(_mm512_mask_mov_epi32(rounded, nan, quiet));
}

/// 32 Floats' bf16 bits, in order, in one register, rounded in integer
/// arithmetic as bf16_bits16 rounds them.
__attribute__((target("avx512f,avx512bw"))) static inline __m512i bf16_bits32(const float *s) {
    __m256i low = bf16_bits16(_mm512_loadu_ps(s)), high = bf16_bits16(_mm512_loadu_ps(s + 16));
    return _mm512_inserti64x4(_mm512_castsi256_si512(low), high, 1);
}

/// The same with AVX512_BF16's own conversion (vcvtne2ps2bf16), which
/// rounds to nearest even and quiets a NaN as bf16_bits does, but flushes a
/// subnormal input to zero where PyTorch rounds it: 32 values holding one
/// take bf16_bits32. About twice as fast as the integer rounding.
__attribute__((target("avx512f,avx512bw,avx512bf16"))) static inline __m512i bf16_bits32_converted(const float *s) {
    const __m512i magnitude = _mm512_set1_epi32(0x7FFFFFFF), one = _mm512_set1_epi32(1);
    const __m512i largest_subnormal = _mm512_set1_epi32(0x007FFFFF);
    __m512 low = _mm512_loadu_ps(s), high = _mm512_loadu_ps(s + 16);
    // Subnormal: 1 <= |bits| <= 0x007FFFFF, so |bits| - 1 (unsigned) is below the largest subnormal.
    __mmask16 small_low = _mm512_cmplt_epu32_mask(_mm512_sub_epi32(_mm512_and_si512(_mm512_castps_si512(low), magnitude), one),
                                                  largest_subnormal);
    __mmask16 small_high = _mm512_cmplt_epu32_mask(_mm512_sub_epi32(_mm512_and_si512(_mm512_castps_si512(high), magnitude), one),
                                                   largest_subnormal);
    if ((small_low | small_high) == 0) return (__m512i)_mm512_cvtne2ps_pbh(high, low);
    return bf16_bits32(s);
}

/// 8 Floats to their bf16 bits, rounded as bf16_bits rounds one, each in the
/// low half of its 32-bit lane (AVX2 has no 32-to-16 narrowing store).
__attribute__((target("avx2"))) static inline __m256i bf16_bits8(__m256 x) {
    __m256i bits = _mm256_castps_si256(x);
    __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(bits, 16), _mm256_set1_epi32(1));
    __m256i rounded = _mm256_srli_epi32(_mm256_add_epi32(_mm256_add_epi32(bits, _mm256_set1_epi32(0x7FFF)), lsb), 16);
    __m256i quiet = _mm256_or_si256(_mm256_srli_epi32(bits, 16), _mm256_set1_epi32(0x40));
    // Signed compare is right here: both sides are below 2^31.
    __m256i nan = _mm256_cmpgt_epi32(_mm256_and_si256(bits, _mm256_set1_epi32(0x7FFFFFFF)), _mm256_set1_epi32(0x7F800000));
    return _mm256_blendv_epi8(rounded, quiet, nan);
}
#endif

#endif
