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
/// Thirty-two lanes at a time with the CPU's own conversion
/// (`bf16_bits32_converted`: integer rounding for a block of 32 holding a
/// subnormal, as for a row's tail). About twice as fast as sixteen lanes of
/// integer rounding: the products' operands are converted on every bf16
/// product.
__attribute__((target("avx512f,avx512bw,avx512bf16"))) static void round_avx512bf16(uint16_t *dst, const float *src,
                                                                                   size_t rows, size_t columns, size_t ld) {
    for (size_t r = 0; r < rows; r++) {
        const float *s = src + r * ld;
        uint16_t *d = dst + r * columns;
        size_t c = 0;
        for (; c + 32 <= columns; c += 32) _mm512_storeu_si512((void *)(d + c), bf16_bits32_converted(s + c));
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

/// Plain loops: widest.h builds them for AVX-512 and AVX2, where the
/// compiler runs them eight or sixteen lanes wide (CPUs without AVX-512 take
/// this path for every bf16 product).
WIDEST_VOID(factsweep_bf16_round_floats, (float *dst, const float *src, size_t rows, size_t columns, size_t ld),
            (dst, src, rows, columns, ld)) {
    for (size_t r = 0; r < rows; r++) {
        const float *s = src + r * ld;
        float *d = dst + r * columns;
        for (size_t c = 0; c < columns; c++) d[c] = bf16_float(bf16_bits(s[c]));
    }
}

WIDEST_VOID(factsweep_bf16_widen, (float *dst, const uint16_t *src, size_t rows, size_t columns, size_t ld),
            (dst, src, rows, columns, ld)) {
    for (size_t r = 0; r < rows; r++) {
        const uint16_t *s = src + r * ld;
        float *d = dst + r * columns;
        for (size_t c = 0; c < columns; c++) d[c] = bf16_float(s[c]);
    }
}
