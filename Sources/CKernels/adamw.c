// adamw.c: see include/adamw.h. Compiled with -fno-math-errno (sqrtf is the
// IEEE square root, vectorisable) and -ffp-contract=off (no fused
// multiply-adds: the same roundings as PyTorch's CPU AdamW and the golden
// tests). Each kernel is built for AVX-512, AVX2 and the x86-64 baseline
// (widest.h).
#include "adamw.h"
#include "bf16_round.h"
#include "widest.h"

#include <math.h>
#include <string.h>

WIDEST void factsweep_adamw_f32(const factsweep_adamw_step *s, float *restrict params, float *restrict grads,
                         float *restrict m, float *restrict v, size_t count) {
    const float c1 = 1.0f - s->beta1, c2 = 1.0f - s->beta2;
    for (size_t i = 0; i < count; i++) {
        float g = grads[i] * s->clip;
        float mi = s->beta1 * m[i] + c1 * g;
        float vi = s->beta2 * v[i] + c2 * g * g;
        m[i] = mi;
        v[i] = vi;
        params[i] = params[i] * s->decay - s->step_size * mi / (sqrtf(vi) / s->bias2_sqrt + s->eps);
        grads[i] = 0.0f;
    }
}

WIDEST void factsweep_adamw_bf16(const factsweep_adamw_step *s, float *restrict params, float *restrict grads,
                          uint16_t *restrict m, uint16_t *restrict v, size_t count) {
    const float c1 = 1.0f - s->beta1, c2 = 1.0f - s->beta2;
    for (size_t i = 0; i < count; i++) {
        float g = grads[i] * s->clip;
        uint16_t mb = bf16_bits(s->beta1 * bf16_float(m[i]) + c1 * g);
        uint16_t vb = bf16_bits(s->beta2 * bf16_float(v[i]) + c2 * g * g);
        m[i] = mb;
        v[i] = vb;
        float mi = bf16_float(mb), vi = bf16_float(vb);
        params[i] = params[i] * s->decay - s->step_size * mi / (sqrtf(vi) / s->bias2_sqrt + s->eps);
        grads[i] = 0.0f;
    }
}
