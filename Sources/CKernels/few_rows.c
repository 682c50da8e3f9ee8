// few_rows.c: see include/few_rows.h. The product runs in tiles of a few
// activation rows × 4 weight rows, the tile's sums kept in vector registers,
// so that each load of a weight row's vector feeds one multiply-add per
// activation row and each load of an activation row's feeds 4. While the
// first tile of a block of weight rows runs, the next block's rows are
// prefetched: the weight comes from memory once, and without the prefetch
// its loads stalled the tile (docs/benchmarks.md, issue 13's ninth stop).
//
// The tile's shape follows the registers:
// - AVX-512 (32 registers of 16 lanes): 4 activation rows × 4 weight rows,
//   16 sums, 4 weight vectors and 4 activation vectors.
// - AVX2 (16 registers of 8 lanes): 2 activation rows × 4 weight rows, 8
//   sums, 4 weight vectors and one activation vector, 13 registers. The
//   AVX-512 tile built for AVX2 needs 32 registers for its sums alone and
//   spilled them: 24–26 GFLOP/s a thread at 8–32 rows, against 34–62 with
//   weights streamed from memory (issue 13, sixteenth stop).
// - The plain build runs the AVX2 tile in SSE2's 4-lane registers, two per
//   vector (it spills there; it exists to keep the build portable).
//
// The sums over `depth` are kept in vector lanes (reassociated), with fused
// multiply-adds on AVX-512 and AVX2 (the plain build has none), so they round
// differently from an sgemm's and from path to path: decoding only, where the
// generation tests compare greedy tokens and logits with recomputation and
// with transformers.
#include "few_rows.h"
#include "widest.h"
#include <string.h>

// The vector types are used only inside the always-inlined helpers of one
// kernel; no vector crosses a call, so the ABI warning for the plain build
// does not apply.
#pragma clang diagnostic ignored "-Wpsabi"

typedef float v16 __attribute__((vector_size(64)));
typedef float v8 __attribute__((vector_size(32)));
typedef float v4 __attribute__((vector_size(16)));

#define INLINE static inline __attribute__((always_inline))

INLINE v16 load16(const float *p) {
    v16 v;
    memcpy(&v, p, sizeof v);
    return v;
}

INLINE v8 load8(const float *p) {
    v8 v;
    memcpy(&v, p, sizeof v);
    return v;
}

INLINE float sum8(v8 v) {
    v4 b = __builtin_shufflevector(v, v, 0, 1, 2, 3) + __builtin_shufflevector(v, v, 4, 5, 6, 7);
    return (b[0] + b[2]) + (b[1] + b[3]);
}

INLINE float sum16(v16 v) {
    return sum8(__builtin_shufflevector(v, v, 0, 1, 2, 3, 4, 5, 6, 7) + __builtin_shufflevector(v, v, 8, 9, 10, 11, 12, 13, 14, 15));
}

/// Prefetches the cache line at k of each of the next block's 4 weight rows.
INLINE void prefetch_next(const float *next, size_t depth, size_t k) {
    if (next)
        for (int c = 0; c < 4; c++) __builtin_prefetch(next + c * depth + k);
}

/// s plus the products of x's and w's elements k..<depth (the part of a row
/// shorter than a vector), one at a time.
INLINE float plus_tail(float s, const float *x, const float *w, size_t k, size_t depth) {
#pragma clang fp contract(fast)
    for (size_t t = k; t < depth; t++) s += x[t] * w[t];
    return s;
}

/// out (R, C; rows out_stride apart) = x (R rows of depth) · w (C rows of depth)ᵀ
/// in 16 lanes, R and C at most 4 and constant at every call (the loops
/// unroll, the sums stay in registers). `next`, when not null, is the next
/// block's first weight row: its 4 rows are prefetched alongside.
INLINE void tile16(float *restrict out, size_t out_stride, const float *restrict x, const float *restrict w, size_t depth,
                   const int R, const int C, const float *next) {
#pragma clang fp contract(fast)
    v16 acc[4][4] = {{{0}}};
    size_t k = 0;
    for (; k + 16 <= depth; k += 16) {
        v16 wv[4], xv[4];
        prefetch_next(next, depth, k);
        for (int c = 0; c < C; c++) wv[c] = load16(w + c * depth + k);
        for (int r = 0; r < R; r++) xv[r] = load16(x + r * depth + k);
        for (int r = 0; r < R; r++)
            for (int c = 0; c < C; c++) acc[r][c] += xv[r] * wv[c];
    }
    for (int r = 0; r < R; r++)
        for (int c = 0; c < C; c++) out[r * out_stride + c] = plus_tail(sum16(acc[r][c]), x + r * depth, w + c * depth, k, depth);
}

/// `tile16` in 8 lanes for R at most 2: one activation vector at a time.
INLINE void tile8(float *restrict out, size_t out_stride, const float *restrict x, const float *restrict w, size_t depth,
                  const int R, const int C, const float *next) {
#pragma clang fp contract(fast)
    v8 acc[2][4] = {{{0}}};
    size_t k = 0;
    for (; k + 8 <= depth; k += 8) {
        v8 wv[4];
        // One prefetch per 64-byte line of each row.
        if (k % 16 == 0) prefetch_next(next, depth, k);
        for (int c = 0; c < C; c++) wv[c] = load8(w + c * depth + k);
        for (int r = 0; r < R; r++) {
            v8 xv = load8(x + r * depth + k);
            for (int c = 0; c < C; c++) acc[r][c] += xv * wv[c];
        }
    }
    for (int r = 0; r < R; r++)
        for (int c = 0; c < C; c++) out[r * out_stride + c] = plus_tail(sum8(acc[r][c]), x + r * depth, w + c * depth, k, depth);
}

/// Every activation row against weight rows j..<j+C (C is 4 or 1), in
/// 16-lane tiles of 4 activation rows; `next` as in `tile16`.
INLINE void block16(float *restrict out, size_t out_stride, const float *restrict x, size_t rows, const float *restrict w,
                    size_t depth, size_t j, const int C, const float *next) {
    for (size_t i = 0; i < rows; i += 4) {
        float *o = out + i * out_stride + j;
        const float *xi = x + i * depth, *wj = w + j * depth, *n = i == 0 ? next : 0;
        switch (rows - i) {
        case 1: tile16(o, out_stride, xi, wj, depth, 1, C, n); break;
        case 2: tile16(o, out_stride, xi, wj, depth, 2, C, n); break;
        case 3: tile16(o, out_stride, xi, wj, depth, 3, C, n); break;
        default: tile16(o, out_stride, xi, wj, depth, 4, C, n); break;
        }
    }
}

/// `block16` in 8-lane tiles of 2 activation rows.
INLINE void block8(float *restrict out, size_t out_stride, const float *restrict x, size_t rows, const float *restrict w,
                   size_t depth, size_t j, const int C, const float *next) {
    for (size_t i = 0; i < rows; i += 2) {
        float *o = out + i * out_stride + j;
        const float *xi = x + i * depth, *wj = w + j * depth, *n = i == 0 ? next : 0;
        if (rows - i == 1) tile8(o, out_stride, xi, wj, depth, 1, C, n);
        else tile8(o, out_stride, xi, wj, depth, 2, C, n);
    }
}

/// The next block's first weight row after rows j..<j+C, or null past the
/// last whole block (a prefetch there would read beyond w).
INLINE const float *next_block(const float *w, size_t cols, size_t depth, size_t j, size_t C) {
    return j + C + 4 <= cols ? w + (j + C) * depth : 0;
}

/// The whole product in 8-lane tiles: the AVX2 path and the plain one.
INLINE void product8(float *restrict out, size_t out_stride, const float *restrict x, size_t rows, const float *restrict w,
                     size_t cols, size_t depth) {
    size_t j = 0;
    for (; j + 4 <= cols; j += 4) block8(out, out_stride, x, rows, w, depth, j, 4, next_block(w, cols, depth, j, 4));
    for (; j < cols; j++) block8(out, out_stride, x, rows, w, depth, j, 1, 0);
}

#ifdef FACTSWEEP_X86_PATHS
__attribute__((target("avx512f"))) static void product_avx512(float *restrict out, size_t out_stride, const float *restrict x,
                                                              size_t rows, const float *restrict w, size_t cols, size_t depth) {
    size_t j = 0;
    for (; j + 4 <= cols; j += 4) block16(out, out_stride, x, rows, w, depth, j, 4, next_block(w, cols, depth, j, 4));
    for (; j < cols; j++) block16(out, out_stride, x, rows, w, depth, j, 1, 0);
}

__attribute__((target("avx2,fma"))) static void product_avx2(float *restrict out, size_t out_stride, const float *restrict x,
                                                             size_t rows, const float *restrict w, size_t cols, size_t depth) {
    product8(out, out_stride, x, rows, w, cols, depth);
}
#endif

void factsweep_few_rows_product_on(float *out, size_t out_stride, const float *x, size_t rows, const float *w, size_t cols,
                                   size_t depth, int path) {
    switch (kernel_isa(path)) {
#ifdef FACTSWEEP_X86_PATHS
    case ISA_AVX512: return product_avx512(out, out_stride, x, rows, w, cols, depth);
    case ISA_AVX2: return product_avx2(out, out_stride, x, rows, w, cols, depth);
#endif
    default: return product8(out, out_stride, x, rows, w, cols, depth);
    }
}

void factsweep_few_rows_product(float *out, size_t out_stride, const float *x, size_t rows, const float *w, size_t cols,
                                size_t depth) {
    factsweep_few_rows_product_on(out, out_stride, x, rows, w, cols, depth, FACTSWEEP_PATH_WIDEST);
}
