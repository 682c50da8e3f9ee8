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

/// What a dequantisation writes: Floats, bf16 bits, or bf16 values kept in
/// Float32 (for bf16 products that run as f32 products of rounded inputs).
enum output { FLOATS, BF16_BITS, BF16_FLOATS };

#ifdef FACTSWEEP_X86_PATHS
/// Whole blocks: per block the code book scaled once (the same 16 products
/// as part_of_block's), then per 16 codes two permutes look up the high and
/// the low nibbles and two two-source permutes interleave them into output order.
__attribute__((target("avx512f"))) static void blocks_avx512(const factsweep_nf4 *t, size_t first, size_t count,
                                                             void *out, enum output mode) {
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
            __m512 halves[2] = {_mm512_permutex2var_ps(high, first_half, low), _mm512_permutex2var_ps(high, second_half, low)};
            for (int h = 0; h < 2; h++) {
                size_t at = base + 2 * j + 16 * h;
                switch (mode) {
                case FLOATS: _mm512_storeu_ps((float *)out + at, halves[h]); break;
                case BF16_BITS: _mm256_storeu_si256((__m256i *)((uint16_t *)out + at), bf16_bits16(halves[h])); break;
                case BF16_FLOATS:
                    _mm512_storeu_si512((float *)out + at, _mm512_slli_epi32(_mm512_cvtepu16_epi32(bf16_bits16(halves[h])), 16));
                    break;
                }
            }
        }
    }
}

/// 8 codes' values from the scaled code book held in two registers: each
/// half looked up by the code's low three bits, the fourth bit choosing.
__attribute__((target("avx2"))) static inline __m256 lookup8(__m256 low_half, __m256 high_half, __m256i codes) {
    __m256 from_low = _mm256_permutevar8x32_ps(low_half, codes), from_high = _mm256_permutevar8x32_ps(high_half, codes);
    return _mm256_blendv_ps(from_low, from_high, _mm256_castsi256_ps(_mm256_slli_epi32(codes, 28)));
}

/// Whole blocks on AVX2: the same scaled code book (16 products per block),
/// per 8 bytes the high and the low nibbles looked up and interleaved into
/// output order by unpacking and swapping 128-bit lanes.
__attribute__((target("avx2"))) static void blocks_avx2(const factsweep_nf4 *t, size_t first, size_t count, void *out,
                                                        enum output mode) {
    const __m256 book_low = _mm256_loadu_ps(t->code_book), book_high = _mm256_loadu_ps(t->code_book + 8);
    const __m256i nibble = _mm256_set1_epi32(0x0F);
    for (size_t b = first; b < first + count; b++) {
        const __m256 scale = _mm256_set1_ps(block_scale(t, b));
        const __m256 low_half = _mm256_mul_ps(book_low, scale), high_half = _mm256_mul_ps(book_high, scale);
        const uint8_t *bytes = t->codes + 32 * b;
        size_t base = 64 * (b - first);
        for (int j = 0; j < 32; j += 8) {
            __m256i codes = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(bytes + j)));
            __m256 even = lookup8(low_half, high_half, _mm256_srli_epi32(codes, 4));
            __m256 odd = lookup8(low_half, high_half, _mm256_and_si256(codes, nibble));
            __m256 first_pairs = _mm256_unpacklo_ps(even, odd), second_pairs = _mm256_unpackhi_ps(even, odd);
            __m256 halves[2] = {_mm256_permute2f128_ps(first_pairs, second_pairs, 0x20),
                                _mm256_permute2f128_ps(first_pairs, second_pairs, 0x31)};
            for (int h = 0; h < 2; h++) {
                size_t at = base + 2 * j + 8 * h;
                switch (mode) {
                case FLOATS: _mm256_storeu_ps((float *)out + at, halves[h]); break;
                case BF16_BITS: {
                    __m256i packed = _mm256_permute4x64_epi64(_mm256_packus_epi32(bf16_bits8(halves[h]), _mm256_setzero_si256()), 0x08);
                    _mm_storeu_si128((__m128i *)((uint16_t *)out + at), _mm256_castsi256_si128(packed));
                    break;
                }
                case BF16_FLOATS: _mm256_storeu_si256((__m256i *)((float *)out + at), _mm256_slli_epi32(bf16_bits8(halves[h]), 16)); break;
                }
            }
        }
    }
}
#endif

/// Block b's elements lo … hi − 1 (a whole block or part of one): the code
/// book scaled once, then looked up value by value. The portable path.
static void part_of_block(const factsweep_nf4 *t, size_t b, size_t lo, size_t hi, void *out, enum output mode) {
    float scale = block_scale(t, b), table[16];
    for (int i = 0; i < 16; i++) table[i] = t->code_book[i] * scale;
    for (size_t k = lo; k < hi; k++) {
        uint8_t byte = t->codes[k / 2];
        float value = table[(k & 1) ? (byte & 0x0F) : (byte >> 4)];
        switch (mode) {
        case FLOATS: ((float *)out)[k - lo] = value; break;
        case BF16_BITS: ((uint16_t *)out)[k - lo] = bf16_bits(value); break;
        case BF16_FLOATS: ((float *)out)[k - lo] = bf16_float(bf16_bits(value)); break;
        }
    }
}

/// Elements lo … hi − 1: runs of whole blocks to the widest of
/// blocks_avx512 and blocks_avx2 that the CPU has and `path` allows;
/// otherwise (and for the parts of blocks at either end, or a short last
/// block) one block at a time value by value.
static void dequantize(const factsweep_nf4 *t, size_t lo, size_t hi, void *out, enum output mode, int path) {
    size_t width = mode == BF16_BITS ? sizeof(uint16_t) : sizeof(float);
#ifdef FACTSWEEP_X86_PATHS
    const enum kernel_isa isa = kernel_isa(path);
#endif
    for (size_t i = lo; i < hi;) {
        size_t b = i / 64, start = 64 * b;
        void *at = (char *)out + (i - lo) * width;
#ifdef FACTSWEEP_X86_PATHS
        size_t whole = i == start ? (hi - i) / 64 : 0;
        if (isa != ISA_PLAIN && whole > 0) {
            if (isa == ISA_AVX512) blocks_avx512(t, b, whole, at, mode); else blocks_avx2(t, b, whole, at, mode);
            i += 64 * whole;
            continue;
        }
#endif
        size_t stop = start + 64 < hi ? start + 64 : hi;
        part_of_block(t, b, i, stop, at, mode);
        i = stop;
    }
}

void factsweep_nf4_dequantize(const factsweep_nf4 *t, size_t lo, size_t hi, float *out, int path) {
    dequantize(t, lo, hi, out, FLOATS, path);
}

void factsweep_nf4_dequantize_bf16(const factsweep_nf4 *t, size_t lo, size_t hi, uint16_t *out, int path) {
    dequantize(t, lo, hi, out, BF16_BITS, path);
}

void factsweep_nf4_dequantize_bf16_floats(const factsweep_nf4 *t, size_t lo, size_t hi, float *out, int path) {
    dequantize(t, lo, hi, out, BF16_FLOATS, path);
}
