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
