// softmax.c: see include/softmax.h. The maximum and the sum run in 16 lanes
// written out (the compiler may not reorder a float sum by itself), so that
// each lane maps onto one vector element: the order of the additions is the
// one written here, on every machine.
#include "softmax.h"
#include "widest.h"

#include <math.h>

enum { LANES = 16 };

/// The largest of row[0..<count] (−∞ for none; NaNs skipped).
__attribute__((always_inline)) static inline float maximum_of(const float *restrict row, size_t count) {
    size_t whole = count - count % LANES;
    float lanes[LANES];
    for (int l = 0; l < LANES; l++) lanes[l] = -INFINITY;
    for (size_t i = 0; i < whole; i += LANES)
        for (int l = 0; l < LANES; l++) lanes[l] = row[i + l] > lanes[l] ? row[i + l] : lanes[l];
    float m = -INFINITY;
    for (int l = 0; l < LANES; l++) m = lanes[l] > m ? lanes[l] : m;
    for (size_t i = whole; i < count; i++) m = row[i] > m ? row[i] : m;
    return m;
}

/// Replaces row by exp(row − m) in place and returns the sum of the exponentials.
__attribute__((always_inline)) static inline float exponentiate_from(float *restrict row, size_t count, float m) {
    size_t whole = count - count % LANES;
    float lanes[LANES];
    for (int l = 0; l < LANES; l++) lanes[l] = 0;
    for (size_t i = 0; i < whole; i += LANES)
        for (int l = 0; l < LANES; l++) {
            float e = expf(row[i + l] - m);
            row[i + l] = e;
            lanes[l] += e;
        }
    float sum = 0;
    for (size_t i = whole; i < count; i++) {
        float e = expf(row[i] - m);
        row[i] = e;
        sum += e;
    }
    for (int l = 0; l < LANES; l++) sum += lanes[l];
    return sum;
}

/// Exponentiates row − max in place and returns the sum of the exponentials.
/// Inlined into each build of its callers (widest.h): a helper of its own would be built
/// for the baseline only and call the 4-wide SSE exponential.
__attribute__((always_inline)) static inline float exponentiate(float *restrict row, size_t count) {
    return exponentiate_from(row, count, maximum_of(row, count));
}

WIDEST_VOID(factsweep_softmax_row, (float *restrict row, size_t count),
            (row, count)) {
    float inverse = 1.0f / exponentiate(row, count);
    for (size_t i = 0; i < count; i++) row[i] *= inverse;
}

WIDEST_RETURNING(float, factsweep_cross_entropy_row, (float *restrict row, size_t count, size_t target, float scale),
                 (row, count, target, scale)) {
    float inverse = 1.0f / exponentiate(row, count), loss = -logf(row[target] * inverse);
    for (size_t i = 0; i < count; i++) row[i] = row[i] * inverse * scale;
    row[target] -= scale;
    return loss;
}

WIDEST_RETURNING(float, factsweep_online_softmax_block, (float *restrict row, size_t count, float *maximum, float *sum),
                 (row, count, maximum, sum)) {
    float before = *maximum, block = maximum_of(row, count);
    float after = block > before ? block : before;
    // Nothing summed yet (the first block): nothing to rescale.
    float scale = before == -INFINITY ? 0.0f : expf(before - after);
    *sum = *sum * scale + exponentiate_from(row, count, after);
    *maximum = after;
    return scale;
}
