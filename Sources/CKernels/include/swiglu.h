// swiglu.h: SwiGLU's forward and backward over a range of flat (N·F)
// buffers. In C so that the sigmoid's exponential is vectorised (glibc's
// libmvec, through -fveclib): Swift called the scalar `expf` once per value,
// and SwiGLU's two passes plus those calls took about a tenth of a bf16
// batch-8 LoRA step (perf). The caller splits the range across threads.
#ifndef FACTSWEEP_SWIGLU_H
#define FACTSWEEP_SWIGLU_H

#include <stddef.h>

/// out[i] = g · σ(g) · up[i], g = gate[i], σ(g) = 1 / (1 + e^(−g)).
void factsweep_swiglu_forward(float *out, const float *gate, const float *up, size_t count);

/// dup[i] = d · g · σ(g); dgate[i] = d · up[i] · (σ(g) + g · σ(g) · (1 − σ(g))), d = dout[i].
void factsweep_swiglu_backward(float *dgate, float *dup, const float *dout, const float *gate, const float *up,
                               size_t count);

#endif
