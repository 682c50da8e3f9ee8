// rms_norm.c: see include/rms_norm.h. Sums run in 16 lanes written out, so
// that each maps onto one vector element and the order of the additions is
// the one written here on every machine.
#include "rms_norm.h"
#include "widest.h"

#include <math.h>

enum { LANES = 16 };

WIDEST_RETURNING(float, factsweep_rms_norm_row, (float *restrict y, const float *restrict x, const float *restrict w,
                                                 size_t c, float eps),
                 (y, x, w, c, eps)) {
    size_t whole = c - c % LANES;
    float lanes[LANES] = {0};
    for (size_t i = 0; i < whole; i += LANES)
        for (int l = 0; l < LANES; l++) lanes[l] += x[i + l] * x[i + l];
    float sum = 0;
    for (size_t i = whole; i < c; i++) sum += x[i] * x[i];
    for (int l = 0; l < LANES; l++) sum += lanes[l];
    float r = 1.0f / sqrtf(sum / (float)c + eps);
    for (size_t i = 0; i < c; i++) y[i] = w[i] * (x[i] * r);
    return r;
}

WIDEST_VOID(factsweep_rms_norm_backward_row, (float *restrict dx, float *restrict dw, const float *restrict dy,
                                              const float *restrict x, const float *restrict w, float r, size_t c),
            (dx, dw, dy, x, w, r, c)) {
    size_t whole = c - c % LANES;
    float lanes[LANES] = {0};
    for (size_t i = 0; i < whole; i += LANES)
        for (int l = 0; l < LANES; l++) lanes[l] += w[i + l] * dy[i + l] * x[i + l];
    float dot = 0;
    for (size_t i = whole; i < c; i++) dot += w[i] * dy[i] * x[i];
    for (int l = 0; l < LANES; l++) dot += lanes[l];
    float k = dot * r * r * r / (float)c;
    for (size_t i = 0; i < c; i++) dx[i] += r * w[i] * dy[i] - k * x[i];
    if (dw)
        for (size_t i = 0; i < c; i++) dw[i] += dy[i] * x[i] * r;
}
