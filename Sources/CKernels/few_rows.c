// few_rows.c: see include/few_rows.h. Four weight rows at a time share each
// load of an activation row; the sums over `depth` are kept in vector lanes
// (reassociated) and may use fused multiply-adds, so they round differently
// from an sgemm's: decoding only, where the generation tests compare greedy
// tokens and logits with recomputation and with transformers.
#include "few_rows.h"
#include "widest.h"

WIDEST void factsweep_few_rows_product(float *restrict out, size_t out_stride, const float *restrict x, size_t rows,
                                       const float *restrict w, size_t cols, size_t depth) {
#pragma clang fp reassociate(on) contract(fast)
    size_t j = 0;
    for (; j + 4 <= cols; j += 4) {
        const float *w0 = w + j * depth, *w1 = w0 + depth, *w2 = w1 + depth, *w3 = w2 + depth;
        for (size_t i = 0; i < rows; i++) {
            const float *xi = x + i * depth;
            float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
            for (size_t k = 0; k < depth; k++) {
                float v = xi[k];
                s0 += w0[k] * v;
                s1 += w1[k] * v;
                s2 += w2[k] * v;
                s3 += w3[k] * v;
            }
            float *o = out + i * out_stride + j;
            o[0] = s0; o[1] = s1; o[2] = s2; o[3] = s3;
        }
    }
    for (; j < cols; j++) {
        const float *wj = w + j * depth;
        for (size_t i = 0; i < rows; i++) {
            const float *xi = x + i * depth;
            float s = 0;
            for (size_t k = 0; k < depth; k++) s += wj[k] * xi[k];
            out[i * out_stride + j] = s;
        }
    }
}
