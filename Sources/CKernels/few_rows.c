// few_rows.c: see include/few_rows.h. The product runs in tiles of up to 4
// activation rows × 4 weight rows: 16 sums kept in 16-lane vectors, so that
// each load of a weight row's 16 floats feeds 4 multiply-adds and each load
// of an activation row's feeds 4 (the earlier kernel, one activation row at a
// time, fed each activation load to 4 and ran out of load slots from 8 rows
// on). While the first tile of a block of weight rows runs, the next block's
// rows are prefetched: the weight comes from memory once, and without the
// prefetch its loads stalled the tile (docs/benchmarks.md, issue 13's ninth
// stop).
//
// The tile's 16 sums fill half of AVX-512's 32 registers; the AVX2 and
// baseline clones (16 registers) spill them, which only machines without
// AVX-512 would pay (this project's all have it).
//
// The sums over `depth` are kept in vector lanes (reassociated) and use fused
// multiply-adds, so they round differently from an sgemm's: decoding only,
// where the generation tests compare greedy tokens and logits with
// recomputation and with transformers.
#include "few_rows.h"
#include "widest.h"
#include <string.h>

// The vector types are used only inside the always-inlined helpers of one
// kernel clone; no vector crosses a call, so the ABI warning for the
// baseline clone does not apply.
#pragma clang diagnostic ignored "-Wpsabi"

typedef float v16 __attribute__((vector_size(64)));
typedef float v8 __attribute__((vector_size(32)));
typedef float v4 __attribute__((vector_size(16)));

static inline __attribute__((always_inline)) v16 load16(const float *p) {
    v16 v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline __attribute__((always_inline)) float sum16(v16 v) {
    v8 a = __builtin_shufflevector(v, v, 0, 1, 2, 3, 4, 5, 6, 7) + __builtin_shufflevector(v, v, 8, 9, 10, 11, 12, 13, 14, 15);
    v4 b = __builtin_shufflevector(a, a, 0, 1, 2, 3) + __builtin_shufflevector(a, a, 4, 5, 6, 7);
    return (b[0] + b[2]) + (b[1] + b[3]);
}

/// out (R, C; rows out_stride apart) = x (R rows of depth) · w (C rows of depth)ᵀ,
/// R and C at most 4 and constant at every call (the loops unroll, the sums
/// stay in registers). `next`, when not null, is the next block's first
/// weight row: its 4 rows are prefetched alongside.
static inline __attribute__((always_inline)) void tile(float *restrict out, size_t out_stride, const float *restrict x,
                                                       const float *restrict w, size_t depth, const int R, const int C,
                                                       const float *next) {
#pragma clang fp contract(fast)
    v16 acc[4][4] = {{{0}}};
    size_t k = 0;
    for (; k + 16 <= depth; k += 16) {
        v16 wv[4], xv[4];
        if (next)
            for (int c = 0; c < 4; c++) __builtin_prefetch(next + c * depth + k);
        for (int c = 0; c < C; c++) wv[c] = load16(w + c * depth + k);
        for (int r = 0; r < R; r++) xv[r] = load16(x + r * depth + k);
        for (int r = 0; r < R; r++)
            for (int c = 0; c < C; c++) acc[r][c] += xv[r] * wv[c];
    }
    for (int r = 0; r < R; r++)
        for (int c = 0; c < C; c++) {
            float s = sum16(acc[r][c]);
            for (size_t t = k; t < depth; t++) s += x[r * depth + t] * w[c * depth + t];
            out[r * out_stride + c] = s;
        }
}

/// Every activation row against weight rows j..<j+C, 4 activation rows a tile.
static inline __attribute__((always_inline)) void block(float *restrict out, size_t out_stride, const float *restrict x,
                                                        size_t rows, const float *restrict w, size_t cols, size_t depth,
                                                        size_t j, const int C) {
    // Past the last block the prefetch would read beyond w.
    const float *next = j + C + 4 <= cols ? w + (j + C) * depth : 0;
    for (size_t i = 0; i < rows; i += 4) {
        float *o = out + i * out_stride + j;
        const float *xi = x + i * depth, *wj = w + j * depth, *n = i == 0 ? next : 0;
        switch (rows - i) {
        case 1: tile(o, out_stride, xi, wj, depth, 1, C, n); break;
        case 2: tile(o, out_stride, xi, wj, depth, 2, C, n); break;
        case 3: tile(o, out_stride, xi, wj, depth, 3, C, n); break;
        default: tile(o, out_stride, xi, wj, depth, 4, C, n); break;
        }
    }
}

WIDEST void factsweep_few_rows_product(float *restrict out, size_t out_stride, const float *restrict x, size_t rows,
                                       const float *restrict w, size_t cols, size_t depth) {
    size_t j = 0;
    for (; j + 4 <= cols; j += 4) block(out, out_stride, x, rows, w, cols, depth, j, 4);
    for (; j < cols; j++) block(out, out_stride, x, rows, w, cols, depth, j, 1);
}
