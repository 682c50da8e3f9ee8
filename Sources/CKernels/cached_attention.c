// cached_attention.c: see include/cached_attention.h. The dot products are
// summed in vector lanes (reassociated), so they round differently from an
// sgemm's; inference only, where the cached generation tests compare greedy
// tokens and logits against recomputation and transformers within tolerance.
#include "cached_attention.h"
#include "bf16_round.h"
#include "widest.h"

#include <math.h>

static inline float dot(const float *restrict a, const float *restrict b, size_t n) {
#pragma clang fp reassociate(on) contract(fast)
    float sum = 0;
    for (size_t i = 0; i < n; i++) sum += a[i] * b[i];
    return sum;
}

/// A value rounded to bf16 and widened back (exact in Float32).
static inline float rounded(float x) { return bf16_float(bf16_bits(x)); }

/// q·k with both rounded to bf16 (q already is), summed in f32: what a bf16
/// product of them accumulates.
static inline float dot_bf16(const float *restrict q, const float *restrict k, size_t n) {
#pragma clang fp reassociate(on) contract(fast)
    float sum = 0;
    for (size_t i = 0; i < n; i++) sum += q[i] * rounded(k[i]);
    return sum;
}

WIDEST_VOID(factsweep_cached_attention, (float *restrict out, const float *restrict q, size_t row_stride,
                                         const float *restrict keys, const float *restrict values, size_t cache_stride,
                                         size_t head_dim, size_t start, size_t rows, float scale,
                                         float *restrict scores, int bf16_inputs),
            (out, q, row_stride, keys, values, cache_stride, head_dim, start, rows, scale, scores, bf16_inputs)) {
    if (head_dim == 0) return;
    float query[head_dim];
    for (size_t t = 0; t < rows; t++) {
        const float *qt = q + t * row_stride;
        float *ot = out + t * row_stride;
        size_t visible = start + t + 1;
        float top = -INFINITY;
        if (bf16_inputs) {
            for (size_t d = 0; d < head_dim; d++) query[d] = rounded(qt[d]);
        }
        for (size_t j = 0; j < visible; j++) {
            const float *kj = keys + j * cache_stride;
            float s = scale * (bf16_inputs ? dot_bf16(query, kj, head_dim) : dot(qt, kj, head_dim));
            scores[j] = s;
            top = s > top ? s : top;
        }
        float total = 0;
        for (size_t j = 0; j < visible; j++) {
            float e = expf(scores[j] - top);
            scores[j] = e;
            total += e;
        }
        float inverse = 1 / total;
        for (size_t d = 0; d < head_dim; d++) ot[d] = 0;
        for (size_t j = 0; j < visible; j++) {
            const float *vj = values + j * cache_stride;
            float p = scores[j] * inverse;
            if (bf16_inputs) {
                p = rounded(p);
                for (size_t d = 0; d < head_dim; d++) ot[d] += p * rounded(vj[d]);
            } else {
                for (size_t d = 0; d < head_dim; d++) ot[d] += p * vj[d];
            }
        }
    }
}
