// nf4.c: see include/nf4.h. Built with -ffp-contract=off: each value is one
// Float product, code_book[code] · scale, on every path.
#include "nf4.h"

#include "bf16_round.h"

/// Block b's scale, as bitsandbytes computes it: dynamic_map[code] · group
/// scale, then + offset (two roundings in that order; the file is built with
/// -ffp-contract=off, so no fused multiply-add).
static inline float block_scale(const factsweep_nf4 *t, size_t b) {
    float scaled = t->dynamic_map[t->absmax_codes[b]] * t->group_scales[b >> 8];
    return scaled + t->absmax_offset;
}

static void dequantize_portable(const factsweep_nf4 *t, size_t first, size_t count, float *out, uint16_t *out_bf16) {
    for (size_t b = first; b < first + count; b++) {
        float scale = block_scale(t, b), table[16];
        for (int i = 0; i < 16; i++) table[i] = t->code_book[i] * scale;
        const uint8_t *bytes = t->codes + 32 * b;
        size_t base = 64 * (b - first);
        for (int j = 0; j < 32; j++) {
            float high = table[bytes[j] >> 4], low = table[bytes[j] & 0x0F];
            if (out_bf16) {
                out_bf16[base + 2 * j] = bf16_bits(high);
                out_bf16[base + 2 * j + 1] = bf16_bits(low);
            } else {
                out[base + 2 * j] = high;
                out[base + 2 * j + 1] = low;
            }
        }
    }
}

#ifdef FACTSWEEP_AVX512_PATH
/// Per block: the code book scaled once (16 products, the same ones the
/// portable path makes), then per 16 codes two permutes look up the high and
/// the low nibbles and two two-source permutes interleave them into output order.
__attribute__((target("avx512f"))) static void dequantize_avx512(const factsweep_nf4 *t, size_t first, size_t count,
                                                                 float *out, uint16_t *out_bf16) {
    const __m512 book = _mm512_loadu_ps(t->code_book);
    const __m512i first_half = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    const __m512i second_half = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
    const __m512i nibble = _mm512_set1_epi32(0x0F);
    for (size_t b = first; b < first + count; b++) {
        const __m512 table = _mm512_mul_ps(book, _mm512_set1_ps(block_scale(t, b)));
        const uint8_t *bytes = t->codes + 32 * b;
        size_t base = 64 * (b - first);
        for (int j = 0; j < 32; j += 16) {
            __m512i codes = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(bytes + j)));
            __m512 high = _mm512_permutexvar_ps(_mm512_srli_epi32(codes, 4), table);
            __m512 low = _mm512_permutexvar_ps(_mm512_and_si512(codes, nibble), table);
            __m512 a = _mm512_permutex2var_ps(high, first_half, low);
            __m512 c = _mm512_permutex2var_ps(high, second_half, low);
            if (out_bf16) {
                _mm256_storeu_si256((__m256i *)(out_bf16 + base + 2 * j), bf16_bits16(a));
                _mm256_storeu_si256((__m256i *)(out_bf16 + base + 2 * j + 16), bf16_bits16(c));
            } else {
                _mm512_storeu_ps(out + base + 2 * j, a);
                _mm512_storeu_ps(out + base + 2 * j + 16, c);
            }
        }
    }
}

#endif

void factsweep_nf4_dequantize_blocks(const factsweep_nf4 *t, size_t first, size_t count, float *out, int portable) {
#ifdef FACTSWEEP_AVX512_PATH
    if (!portable && has_avx512f()) { dequantize_avx512(t, first, count, out, NULL); return; }
#endif
    dequantize_portable(t, first, count, out, NULL);
}

void factsweep_nf4_dequantize_blocks_bf16(const factsweep_nf4 *t, size_t first, size_t count, uint16_t *out,
                                          int portable) {
#ifdef FACTSWEEP_AVX512_PATH
    if (!portable && has_avx512f()) { dequantize_avx512(t, first, count, NULL, out); return; }
#endif
    dequantize_portable(t, first, count, NULL, out);
}
