// swiglu.c: see include/swiglu.h. Built with -fveclib=libmvec (each vector of
// expf calls becomes one call of glibc's vector expf, within 1 ulp like the
// scalar one) and -ffp-contract=off: the products and sums are the ones the
// formulas write, in the order they write them.
#include "swiglu.h"
#include "widest.h"

#include <math.h>

WIDEST_VOID(factsweep_swiglu_forward, (float *restrict out, const float *restrict gate, const float *restrict up,
                                       size_t count),
            (out, gate, up, count)) {
    for (size_t i = 0; i < count; i++) {
        float g = gate[i], s = 1.0f / (1.0f + expf(-g));
        out[i] = g * s * up[i];
    }
}

WIDEST_VOID(factsweep_swiglu_backward, (float *restrict dgate, float *restrict dup, const float *restrict dout,
                                        const float *restrict gate, const float *restrict up, size_t count),
            (dgate, dup, dout, gate, up, count)) {
    for (size_t i = 0; i < count; i++) {
        float g = gate[i], s = 1.0f / (1.0f + expf(-g)), d = dout[i];
        dup[i] = d * g * s;
        dgate[i] = d * up[i] * (s + g * s * (1.0f - s));
    }
}
