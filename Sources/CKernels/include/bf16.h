// bf16.h: Float32 operands rounded to bf16 for the products of --precision
// bf16, which round their Float32 inputs on every call (activations, their
// gradients, the adapters' weights). In C so that the rounding runs sixteen
// lanes wide: Core is built for the x86-64 baseline, where the same Swift ran
// four lanes at a time and took 9% of a LoRA bf16 batch-8 run (perf).
#ifndef FACTSWEEP_BF16_H
#define FACTSWEEP_BF16_H

#include <stddef.h>
#include <stdint.h>

/// dst[r·columns + c] = bf16 bits of src[r·ld + c] for r < rows, c < columns:
/// rounded to nearest even, a NaN kept a quiet NaN (PyTorch's rounding).
/// `portable` nonzero takes the plain C loop even where AVX-512 is present
/// (for the tests that compare the two).
void factsweep_bf16_round(uint16_t *dst, const float *src, size_t rows, size_t columns, size_t ld, int portable);

/// The same rounding kept in Float32 (exact there): dst[r·columns + c] =
/// the value of src[r·ld + c]'s bf16 bits. For CPUs whose products have no
/// bf16 kernels, where bf16 products run as f32 products of rounded inputs.
void factsweep_bf16_round_floats(float *dst, const float *src, size_t rows, size_t columns, size_t ld);

/// dst[r·columns + c] = the Float32 value of the bf16 bits src[r·ld + c].
void factsweep_bf16_widen(float *dst, const uint16_t *src, size_t rows, size_t columns, size_t ld);

/// Rows r0 … r1 − 1 of W (rows × columns Float32, row-major) rounded to bf16
/// bits as `factsweep_bf16_round` rounds them, written into both layouts
/// oneDNN's bf16 matmul reads a packed B in on AVX-512 (`BA16a64b2a`, as
/// `factsweep_nf4_dequantize_bf16_vnni` writes it): `forward` holds B = Wᵀ
/// (K = columns, N = rows: the forward's X · Wᵀ), `backward` B = W (K = rows,
/// N = columns: the backward's dY · W), each rows × columns values. Full
/// fine-tuning in bf16 writes its trained weights' roundings so, in the
/// update's pass, a few rows at a time while they are in cache: over plain
/// rows oneDNN re-blocks B inside every product. Returns 0, writing nothing,
/// unless rows and columns are multiples of 64, r0 and r1 multiples of 16
/// and r0 ≤ r1 ≤ rows. `path`: `FACTSWEEP_PATH_*` (cpu.h).
int factsweep_bf16_round_vnni(const float *w, size_t rows, size_t columns, size_t r0, size_t r1, uint16_t *forward,
                              uint16_t *backward, int path);

#endif
