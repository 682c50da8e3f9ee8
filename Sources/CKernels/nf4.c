// nf4.c: see include/nf4.h. Built with -ffp-contract=off: each value is one
// Float product, code_book[code] · scale, on every path.
#include "nf4.h"

#include "bf16_round.h"
#include "vnni.h"

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

// MARK: - Dequantising into oneDNN's blocked bf16 layout

/// Row r's values in blocks q0 … q1 − 1 (64 per block) the portable way, each to its place.
static void vnni_row_portable(const factsweep_nf4 *t, size_t rows, size_t columns, int transposed, size_t r, size_t q0, size_t q1,
                              uint16_t *out) {
    size_t blocks = columns / 64;
    for (size_t q = q0; q < q1; q++) {
        size_t b = r * blocks + q;
        float scale = block_scale(t, b);
        uint16_t table[16];
        for (int i = 0; i < 16; i++) table[i] = bf16_bits(t->code_book[i] * scale);
        for (size_t e = 0; e < 64; e++) {
            uint8_t byte = t->codes[32 * b + e / 2];
            uint16_t value = table[(e & 1) ? (byte & 0x0F) : (byte >> 4)];
            size_t c = 64 * q + e;
            out[transposed ? vnni_offset(columns, c, r) : vnni_offset(rows, r, c)] = value;
        }
    }
}

#ifdef FACTSWEEP_X86_PATHS
/// Block b's 64 bf16 values in order, 32 words per register: the code book
/// scaled and rounded once (the same bits as rounding each value), then each
/// nibble a word lookup, high and low nibbles interleaved.
__attribute__((target("avx512f,avx512bw"))) static inline void block_words(const factsweep_nf4 *t, size_t b, __m512i low_high,
                                                                          __m512i high_high, __m512i *first, __m512i *second) {
    const __m512i table = _mm512_castsi256_si512(bf16_bits16(_mm512_mul_ps(_mm512_loadu_ps(t->code_book), _mm512_set1_ps(block_scale(t, b)))));
    const __m512i codes = _mm512_cvtepu8_epi16(_mm256_loadu_si256((const __m256i *)(t->codes + 32 * b)));
    const __m512i high = _mm512_permutexvar_epi16(_mm512_srli_epi16(codes, 4), table);
    const __m512i low = _mm512_permutexvar_epi16(_mm512_and_si512(codes, _mm512_set1_epi16(0x0F)), table);
    *first = _mm512_permutex2var_epi16(high, low_high, low);
    *second = _mm512_permutex2var_epi16(high, high_high, low);
}

/// B = Wᵀ (the forward): 16 rows of W at a time, block by block; a pair of
/// consecutive columns of one row is one 32-bit value, and after a 16 × 16
/// transpose each store writes one pair of 16 rows, 64 contiguous bytes.
__attribute__((target("avx512f,avx512bw"))) static void vnni_transposed_avx512(const factsweep_nf4 *t, size_t columns, size_t r0,
                                                                              size_t r1, uint16_t *out) {
    const __m512i low_high = _mm512_loadu_si512(pairs_low), high_high = _mm512_loadu_si512(pairs_high);
    size_t blocks = columns / 64;
    // Per 64 rows, block by block, the four groups of 16 rows in turn: their
    // stores fill each 256-byte run of a pair at once, rather than a quarter
    // of it per pass over the whole rows.
    for (size_t r64 = r0; r64 < r1; r64 += 64) {
        for (size_t q = 0; q < blocks; q++) {
            for (size_t r = r64; r < r64 + 64 && r < r1; r += 16) {
                uint16_t *group = out + (r / 64) * (columns * 64) + (r % 64) * 2;
                __m512i first[16], second[16];
                for (int i = 0; i < 16; i++) {
                    // The codes two blocks on (within the row): 16 rows are 16 streams, more than the hardware prefetches.
                    if (q + 2 < blocks) _mm_prefetch((const char *)(t->codes + 32 * ((r + i) * blocks + q + 2)), _MM_HINT_T0);
                    block_words(t, (r + i) * blocks + q, low_high, high_high, &first[i], &second[i]);
                }
                transpose16(first);
                transpose16(second);
                // Pair j holds columns 64q + 2j and 64q + 2j + 1.
                for (int j = 0; j < 16; j++) {
                    _mm512_storeu_si512(group + (2 * q) * 2048 + j * 128, first[j]);
                    _mm512_storeu_si512(group + (2 * q + 1) * 2048 + j * 128, second[j]);
                }
            }
        }
    }
}

/// B = W (the backward): two rows at a time, whose values in blocks
/// q0 … q1 − 1 interleave word by word into 128 contiguous words per block.
__attribute__((target("avx512f,avx512bw"))) static void vnni_plain_avx512(const factsweep_nf4 *t, size_t rows, size_t columns,
                                                                         size_t r0, size_t r1, size_t q0, size_t q1, uint16_t *out) {
    const __m512i low_high = _mm512_loadu_si512(pairs_low), high_high = _mm512_loadu_si512(pairs_high);
    size_t blocks = columns / 64;
    for (size_t r = r0; r < r1; r += 2) {
        for (size_t q = q0; q < q1; q++) {
            __m512i even[2], odd[2];
            block_words(t, r * blocks + q, low_high, high_high, &even[0], &even[1]);
            block_words(t, (r + 1) * blocks + q, low_high, high_high, &odd[0], &odd[1]);
            uint16_t *at = out + vnni_offset(rows, r, 64 * q);
            for (int h = 0; h < 2; h++) {
                _mm512_storeu_si512(at + 64 * h, _mm512_permutex2var_epi16(even[h], low_high, odd[h]));
                _mm512_storeu_si512(at + 64 * h + 32, _mm512_permutex2var_epi16(even[h], high_high, odd[h]));
            }
        }
    }
}
#endif

int factsweep_nf4_dequantize_bf16_vnni(const factsweep_nf4 *t, size_t rows, size_t columns, int transposed, size_t r0,
                                       size_t r1, uint16_t *out, int path) {
    if (rows % 64 || columns % 64 || r0 % 16 || (r1 % 16 && r1 != rows) || r0 > r1 || r1 > rows) return 0;
#ifdef FACTSWEEP_X86_PATHS
    if (kernel_isa(path) == ISA_AVX512) {
        if (transposed) vnni_transposed_avx512(t, columns, r0, r1, out); else vnni_plain_avx512(t, rows, columns, r0, r1, 0, columns / 64, out);
        return 1;
    }
#endif
    (void)path;
    for (size_t r = r0; r < r1; r++) vnni_row_portable(t, rows, columns, transposed, r, 0, columns / 64, out);
    return 1;
}

int factsweep_nf4_dequantize_bf16_vnni_panels(const factsweep_nf4 *t, size_t rows, size_t columns, int transposed, size_t p0,
                                              size_t p1, uint16_t *out, int path) {
    if (rows % 64 || columns % 64 || p0 > p1 || 64 * p1 > (transposed ? rows : columns)) return 0;
    // B = Wᵀ: a panel is 64 of W's rows, which the rows' path writes.
    if (transposed) return factsweep_nf4_dequantize_bf16_vnni(t, rows, columns, 1, 64 * p0, 64 * p1, out, path);
#ifdef FACTSWEEP_X86_PATHS
    if (kernel_isa(path) == ISA_AVX512) {
        vnni_plain_avx512(t, rows, columns, 0, rows, p0, p1, out);
        return 1;
    }
#endif
    (void)path;
    for (size_t r = 0; r < rows; r++) vnni_row_portable(t, rows, columns, 0, r, p0, p1, out);
    return 1;
}
