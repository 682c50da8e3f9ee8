// vnni.h (private to CKernels): oneDNN's blocked bf16 layout for a matmul's
// B on AVX-512, and the register shuffles that write it. Shared by the NF4
// dequantisation (nf4.c) and the rounding of full fine-tuning's trained
// weights (bf16_vnni.c), which write the same layout.
#ifndef FACTSWEEP_VNNI_H
#define FACTSWEEP_VNNI_H

#include <stddef.h>
#include <stdint.h>

#include "widest.h"

/// Where element (kk, nn) of a K × N matrix B lives in oneDNN's bf16 layout
/// for a matmul's weights on AVX-512 (`BA16a64b2a`: blocks of 32 of K by 64
/// of N, each 16 pairs of K rows by 64 columns, a pair's two values side by
/// side), K a multiple of 32 and N of 64.
static inline size_t vnni_offset(size_t K, size_t kk, size_t nn) {
    return (nn / 64) * (K * 64) + (kk / 32) * 2048 + ((kk % 32) / 2) * 128 + (nn % 64) * 2 + (kk % 2);
}

#ifdef FACTSWEEP_X86_PATHS
#include <immintrin.h>

/// Word indices that interleave the first (`pairs_low`) or the last 16
/// words (`pairs_high`) of two registers: x0 y0 x1 y1 ….
static const uint16_t pairs_low[32] = {0, 32, 1, 33, 2, 34, 3, 35, 4, 36, 5, 37, 6, 38, 7, 39,
                                       8, 40, 9, 41, 10, 42, 11, 43, 12, 44, 13, 45, 14, 46, 15, 47};
static const uint16_t pairs_high[32] = {16, 48, 17, 49, 18, 50, 19, 51, 20, 52, 21, 53, 22, 54, 23, 55,
                                        24, 56, 25, 57, 26, 58, 27, 59, 28, 60, 29, 61, 30, 62, 31, 63};

/// x[i] lane L becomes x[L] lane i (x: 4 registers of four 128-bit lanes).
__attribute__((target("avx512f"))) static inline void transpose_lanes(__m512i x[4]) {
    __m512i s0 = _mm512_shuffle_i32x4(x[0], x[1], 0x44), s1 = _mm512_shuffle_i32x4(x[0], x[1], 0xEE);
    __m512i s2 = _mm512_shuffle_i32x4(x[2], x[3], 0x44), s3 = _mm512_shuffle_i32x4(x[2], x[3], 0xEE);
    x[0] = _mm512_shuffle_i32x4(s0, s2, 0x88);
    x[1] = _mm512_shuffle_i32x4(s0, s2, 0xDD);
    x[2] = _mm512_shuffle_i32x4(s1, s3, 0x88);
    x[3] = _mm512_shuffle_i32x4(s1, s3, 0xDD);
}

/// The 16 × 16 matrix of 32-bit values in r (row i in r[i]) transposed in place.
__attribute__((target("avx512f"))) static inline void transpose16(__m512i r[16]) {
    __m512i t[16];
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_epi32(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_epi32(r[i], r[i + 1]);
    }
    // In each lane L, u[4g + e] now holds column 4L + e of rows 4g … 4g + 3.
    __m512i u[16];
    for (int g = 0; g < 4; g++) {
        u[4 * g] = _mm512_unpacklo_epi64(t[4 * g], t[4 * g + 2]);
        u[4 * g + 1] = _mm512_unpackhi_epi64(t[4 * g], t[4 * g + 2]);
        u[4 * g + 2] = _mm512_unpacklo_epi64(t[4 * g + 1], t[4 * g + 3]);
        u[4 * g + 3] = _mm512_unpackhi_epi64(t[4 * g + 1], t[4 * g + 3]);
    }
    for (int e = 0; e < 4; e++) {
        __m512i x[4] = {u[e], u[4 + e], u[8 + e], u[12 + e]};
        transpose_lanes(x);
        for (int L = 0; L < 4; L++) r[4 * L + e] = x[L];
    }
}

#endif

#endif
