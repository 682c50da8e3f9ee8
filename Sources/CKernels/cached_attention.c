// cached_attention.c: see include/cached_attention.h. The dot products are
// summed in vector lanes (reassociated), so they round differently from an
// sgemm's; inference only, where the cached generation tests compare greedy
// tokens and logits against recomputation and transformers within tolerance.
#include "cached_attention.h"
#include "widest.h"

#include <math.h>

static inline float dot(const float *restrict a, const float *restrict b, size_t n) {
#pragma clang fp reassociate(on) contract(fast)
    float sum = 0;
    for (size_t i = 0; i < n; i++) sum += a[i] * b[i];
    return sum;
}

WIDEST void factsweep_cached_attention(float *restrict out, const float *restrict q, size_t row_stride,
                                       const float *restrict keys, const float *restrict values, size_t cache_stride,
                                       size_t head_dim, size_t start, size_t rows, float scale, float *restrict scores) {
    for (size_t t = 0; t < rows; t++) {
        const float *qt = q + t * row_stride;
        float *ot = out + t * row_stride;
        size_t visible = start + t + 1;
        float top = -INFINITY;
        for (size_t j = 0; j < visible; j++) {
            float s = scale * dot(qt, keys + j * cache_stride, head_dim);
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
            for (size_t d = 0; d < head_dim; d++) ot[d] += p * vj[d];
        }
    }
}
