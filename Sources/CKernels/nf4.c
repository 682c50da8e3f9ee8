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

#ifdef FACTSWEEP_AVX512_PATH
/// Whole blocks: per block the code book scaled once (the same 16 products
/// as part_of_block's), then per 16 codes two permutes look up the high and
/// the low nibbles and two two-source permutes interleave them into output order.
__attribute__((target("avx512f"))) static void blocks_avx512(const factsweep_nf4 *t, size_t first, size_t count,
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

/// Block b's elements lo … hi − 1 (a whole block or part of one): the code
/// book scaled once, then looked up value by value. The portable path.
static void part_of_block(const factsweep_nf4 *t, size_t b, size_t lo, size_t hi, float *out, uint16_t *out_bf16) {
    float scale = block_scale(t, b), table[16];
    for (int i = 0; i < 16; i++) table[i] = t->code_book[i] * scale;
    for (size_t k = lo; k < hi; k++) {
        uint8_t byte = t->codes[k / 2];
        float value = table[(k & 1) ? (byte & 0x0F) : (byte >> 4)];
        if (out_bf16) out_bf16[k - lo] = bf16_bits(value); else out[k - lo] = value;
    }
}

/// Elements lo … hi − 1: on AVX-512, runs of whole blocks to blocks_avx512;
/// otherwise (and for the parts of blocks at either end, or a short last
/// block) one block at a time value by value.
static void dequantize(const factsweep_nf4 *t, size_t lo, size_t hi, float *out, uint16_t *out_bf16, int portable) {
#ifdef FACTSWEEP_AVX512_PATH
    const int wide = !portable && factsweep_cpu_has_avx512();
#endif
    for (size_t i = lo; i < hi;) {
        size_t b = i / 64, start = 64 * b;
        float *f = out ? out + (i - lo) : NULL;
        uint16_t *h = out_bf16 ? out_bf16 + (i - lo) : NULL;
#ifdef FACTSWEEP_AVX512_PATH
        size_t whole = i == start ? (hi - i) / 64 : 0;
        if (wide && whole > 0) {
            blocks_avx512(t, b, whole, f, h);
            i += 64 * whole;
            continue;
        }
#endif
        size_t stop = start + 64 < hi ? start + 64 : hi;
        part_of_block(t, b, i, stop, f, h);
        i = stop;
    }
}

void factsweep_nf4_dequantize(const factsweep_nf4 *t, size_t lo, size_t hi, float *out, int portable) {
    dequantize(t, lo, hi, out, NULL, portable);
}

void factsweep_nf4_dequantize_bf16(const factsweep_nf4 *t, size_t lo, size_t hi, uint16_t *out, int portable) {
    dequantize(t, lo, hi, NULL, out, portable);
}
