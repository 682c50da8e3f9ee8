// adamw.h: AdamW's element-wise update over a range of a flat parameter
// arena, written in C so that the compiler vectorises the square root.
// (Swift on Linux lowers Float.squareRoot() to glibc's sqrtf with its errno
// check, one lane at a time.) The caller splits the arena across threads.
#ifndef FACTSWEEP_ADAMW_H
#define FACTSWEEP_ADAMW_H

#include <stddef.h>
#include <stdint.h>

/// One step's scalars: g = grad · clip; m = β1·m + (1−β1)·g;
/// v = β2·v + (1−β2)·g²; p = p·decay − step_size · m / (√v / bias2_sqrt + eps).
typedef struct {
    float clip, beta1, beta2, eps, step_size, decay, bias2_sqrt;
} factsweep_adamw_step;

/// Updates `count` elements with f32 moments, reading their gradients (left
/// as they are: the next backward pass overwrites them); with `rounded` not
/// NULL, also writes each updated parameter's bf16 bits (rounded to nearest
/// even, as the products' operands are) there: full
/// fine-tuning in bf16 gets its per-step rounding of the weights in the pass
/// that writes them, instead of reading them again after it.
void factsweep_adamw_f32(const factsweep_adamw_step *step, float *params, const float *grads,
                         float *m, float *v, uint16_t *rounded, size_t count);

/// The same with bf16 moments (their bits): each moment is widened, updated
/// in f32 and rounded to nearest even when stored, and the parameter step
/// reads the stored values.
void factsweep_adamw_bf16(const factsweep_adamw_step *step, float *params, const float *grads,
                          uint16_t *m, uint16_t *v, uint16_t *rounded, size_t count);

#endif
