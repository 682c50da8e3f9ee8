// bf16.c: see include/bf16.h.
#include "bf16.h"

#include "bf16_round.h"
#include "widest.h"

static void round_portable(uint16_t *dst, const float *src, size_t rows, size_t columns, size_t ld) {
    for (size_t r = 0; r < rows; r++)
        for (size_t c = 0; c < columns; c++) dst[r * columns + c] = bf16_bits(src[r * ld + c]);
}

#ifdef FACTSWEEP_X86_PATHS
/// Sixteen lanes at a time; a row's last few one at a time.
__attribute__((target("avx512f"))) static void round_avx512(uint16_t *dst, const float *src, size_t rows,
                                                            size_t columns, size_t ld) {
    for (size_t r = 0; r < rows; r++) {
        const float *s = src + r * ld;
        uint16_t *d = dst + r * columns;
        size_t c = 0;
        for (; c + 16 <= columns; c += 16) _mm256_storeu_si256((__m256i *)(d + c), bf16_bits16(_mm512_loadu_ps(s + c)));
        for (; c < columns; c++) d[c] = bf16_bits(s[c]);
    }
}
#endif

#ifdef FACTSWEEP_X86_PATHS
/// Thirty-two lanes at a time with the CPU's own conversion (AVX512_BF16's
/// vcvtne2ps2bf16), which rounds to nearest even and quiets a NaN as
/// bf16_bits does, but flushes a subnormal input to zero where PyTorch rounds
/// it: a block of 32 holding one takes bf16_bits16, as does a row's tail.
/// About twice as fast as sixteen lanes of integer rounding: the products'
/// operands are converted on every bf16 product.
__attribute__((target("avx512f,avx512bw,avx512bf16"))) static void round_avx512bf16(uint16_t *dst, const float *src,
                                                                                   size_t rows, size_t columns, size_t ld) {
    const __m512i magnitude = _mm512_set1_epi32(0x7FFFFFFF), one = _mm512_set1_epi32(1);
    const __m512i largest_subnormal = _mm512_set1_epi32(0x007FFFFF);
    for (size_t r = 0; r < rows; r++) {
        const float *s = src + r * ld;
        uint16_t *d = dst + r * columns;
        size_t c = 0;
        for (; c + 32 <= columns; c += 32) {
            __m512 lo = _mm512_loadu_ps(s + c), hi = _mm512_loadu_ps(s + c + 16);
            // Subnormal: 1 <= |bits| <= 0x007FFFFF, so |bits| - 1 (unsigned) is below the largest subnormal.
            __mmask16 small_lo = _mm512_cmplt_epu32_mask(
                _mm512_sub_epi32(_mm512_and_si512(_mm512_castps_si512(lo), magnitude), one), largest_subnormal);
            __mmask16 small_hi = _mm512_cmplt_epu32_mask(
                _mm512_sub_epi32(_mm512_and_si512(_mm512_castps_si512(hi), magnitude), one), largest_subnormal);
            if ((small_lo | small_hi) == 0) {
                _mm512_storeu_si512((void *)(d + c), (__m512i)_mm512_cvtne2ps_pbh(hi, lo));
            } else {
                _mm256_storeu_si256((__m256i *)(d + c), bf16_bits16(lo));
                _mm256_storeu_si256((__m256i *)(d + c + 16), bf16_bits16(hi));
            }
        }
        for (; c + 16 <= columns; c += 16) _mm256_storeu_si256((__m256i *)(d + c), bf16_bits16(_mm512_loadu_ps(s + c)));
        for (; c < columns; c++) d[c] = bf16_bits(s[c]);
    }
}
#endif

void factsweep_bf16_round(uint16_t *dst, const float *src, size_t rows, size_t columns, size_t ld, int portable) {
#ifdef FACTSWEEP_X86_PATHS
    if (!portable && factsweep_cpu_has_avx512bf16()) { round_avx512bf16(dst, src, rows, columns, ld); return; }
    if (!portable && factsweep_cpu_has_avx512()) { round_avx512(dst, src, rows, columns, ld); return; }
#endif
    round_portable(dst, src, rows, columns, ld);
}

/// Plain loops: target_clones builds them for AVX-512 and AVX2, where the
/// compiler runs them eight or sixteen lanes wide (CPUs without AVX-512 take
/// this path for every bf16 product).
WIDEST void factsweep_bf16_round_floats(float *dst, const float *src, size_t rows, size_t columns, size_t ld) {
    for (size_t r = 0; r < rows; r++) {
        const float *s = src + r * ld;
        float *d = dst + r * columns;
        for (size_t c = 0; c < columns; c++) d[c] = bf16_float(bf16_bits(s[c]));
    }
}

WIDEST void factsweep_bf16_widen(float *dst, const uint16_t *src, size_t rows, size_t columns, size_t ld) {
    for (size_t r = 0; r < rows; r++) {
        const uint16_t *s = src + r * ld;
        float *d = dst + r * columns;
        for (size_t c = 0; c < columns; c++) d[c] = bf16_float(s[c]);
    }
}
