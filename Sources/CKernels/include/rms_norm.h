// rms_norm.h: one row of RMSNorm (Llama) and of its backward. In C so that
// the row's sums run in 16 lanes: Swift summed one value at a time, each
// addition waiting for the last, and the two norms of every layer took about
// 3% of a bf16 batch-8 LoRA step (perf).
#ifndef FACTSWEEP_RMS_NORM_H
#define FACTSWEEP_RMS_NORM_H

#include <stddef.h>

/// y = w ⊙ (x · r) with r = 1 / √(mean(x²) + eps); returns r.
float factsweep_rms_norm_row(float *y, const float *x, const float *w, size_t c, float eps);

/// dx += r · w ⊙ dy − k · x with k = r³ · Σ(w ⊙ dy ⊙ x) / c; when dw is not
/// NULL, dw += dy ⊙ x · r.
void factsweep_rms_norm_backward_row(float *dx, float *dw, const float *dy, const float *x, const float *w, float r,
                                     size_t c);

#endif
