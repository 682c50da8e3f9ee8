// cross_entropy.c: see include/cross_entropy.h. The sums run in 16 lanes
// written out (the compiler may not reorder a float sum by itself), so that
// each lane maps onto one vector element: the order of the additions is the
// one written here, on every machine.
#include "cross_entropy.h"
#include "widest.h"

#include <math.h>

enum { LANES = 16 };

WIDEST float factsweep_cross_entropy_row(float *restrict row, size_t count, size_t target, float scale) {
    size_t whole = count - count % LANES;
    float lanes[LANES];
    for (int l = 0; l < LANES; l++) lanes[l] = -INFINITY;
    for (size_t i = 0; i < whole; i += LANES)
        for (int l = 0; l < LANES; l++) lanes[l] = row[i + l] > lanes[l] ? row[i + l] : lanes[l];
    float m = -INFINITY;
    for (int l = 0; l < LANES; l++) m = lanes[l] > m ? lanes[l] : m;
    for (size_t i = whole; i < count; i++) m = row[i] > m ? row[i] : m;

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

    float inverse = 1.0f / sum, loss = -logf(row[target] * inverse);
    for (size_t i = 0; i < count; i++) row[i] = row[i] * inverse * scale;
    row[target] -= scale;
    return loss;
}
