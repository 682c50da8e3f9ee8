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

/// The update of factsweep_adamw_f32, also writing each new parameter's bf16
/// rounding to `rounded` when it is not NULL; inlined into both entry points,
/// so each loop is compiled (and vectorised) for its case.
static inline void adamw_f32(const factsweep_adamw_step *s, float *restrict params, const float *restrict grads, float *restrict m,
                             float *restrict v, uint16_t *restrict rounded, size_t count) {
    const float c1 = 1.0f - s->beta1, c2 = 1.0f - s->beta2;
    for (size_t i = 0; i < count; i++) {
        float g = grads[i] * s->clip;
        float mi = s->beta1 * m[i] + c1 * g;
        float vi = s->beta2 * v[i] + c2 * g * g;
        m[i] = mi;
        v[i] = vi;
        float p = params[i] * s->decay - s->step_size * mi / (sqrtf(vi) / s->bias2_sqrt + s->eps);
        params[i] = p;
        if (rounded) rounded[i] = bf16_bits(p);
    }
}

/// The same with bf16 moments.
static inline void adamw_bf16(const factsweep_adamw_step *s, float *restrict params, const float *restrict grads, uint16_t *restrict m,
                              uint16_t *restrict v, uint16_t *restrict rounded, size_t count) {
    const float c1 = 1.0f - s->beta1, c2 = 1.0f - s->beta2;
    for (size_t i = 0; i < count; i++) {
        float g = grads[i] * s->clip;
        uint16_t mb = bf16_bits(s->beta1 * bf16_float(m[i]) + c1 * g);
        uint16_t vb = bf16_bits(s->beta2 * bf16_float(v[i]) + c2 * g * g);
        m[i] = mb;
        v[i] = vb;
        float mi = bf16_float(mb), vi = bf16_float(vb);
        float p = params[i] * s->decay - s->step_size * mi / (sqrtf(vi) / s->bias2_sqrt + s->eps);
        params[i] = p;
        if (rounded) rounded[i] = bf16_bits(p);
    }
}

// Each entry point calls its loop with `rounded` NULL or not, so that the
// compiler builds (and vectorises) a loop for each case.
WIDEST_VOID(factsweep_adamw_f32, (const factsweep_adamw_step *s, float *restrict params, const float *restrict grads,
                                  float *restrict m, float *restrict v, uint16_t *restrict rounded, size_t count),
            (s, params, grads, m, v, rounded, count)) {
    if (rounded) adamw_f32(s, params, grads, m, v, rounded, count); else adamw_f32(s, params, grads, m, v, NULL, count);
}

WIDEST_VOID(factsweep_adamw_bf16, (const factsweep_adamw_step *s, float *restrict params, const float *restrict grads,
                                   uint16_t *restrict m, uint16_t *restrict v, uint16_t *restrict rounded,
                                   size_t count),
            (s, params, grads, m, v, rounded, count)) {
    if (rounded) adamw_bf16(s, params, grads, m, v, rounded, count); else adamw_bf16(s, params, grads, m, v, NULL, count);
}
