// nf4.h: QLoRA's NF4 dequantisation, the part of
// every QLoRA product that is not the product: training dequantises each
// frozen projection twice a step (forward and backward). In C so that each
// 16-value group is one table permute on AVX-512 (the code book fits one
// register), and each 8 two permutes and a blend on AVX2, instead of scalar
// lookups.
#ifndef FACTSWEEP_NF4_H
#define FACTSWEEP_NF4_H

#include <stddef.h>
#include <stdint.h>

#include "cpu.h"

/// One NF4 matrix as `NF4Tensor` stores it (docs/formats/nf4.md).
typedef struct {
    const uint8_t *codes;        ///< 4-bit codes, 32 bytes per block, first value in the high nibble
    const uint8_t *absmax_codes; ///< per block, its absmax's 8-bit dynamic-map code
    const float *group_scales;   ///< per group of 256 blocks
    const float *dynamic_map;    ///< the 256 dynamic-map values
    const float *code_book;      ///< the 16 NF4 values
    float absmax_offset;
} factsweep_nf4;

/// Writes the weights with flattened indices lo … hi − 1 to `out`:
/// out[i] = code_book[code i] · scale, one Float product per value, the
/// scale computed as bitsandbytes computes it, so every path (and Swift's
/// `NF4Tensor.blockScale`) gives the same bits. Runs of whole blocks take the
/// AVX-512 or AVX2 path where the CPU has it and `path` allows; parts of
/// blocks go value by value. `path`: `FACTSWEEP_PATH_*` (cpu.h).
void factsweep_nf4_dequantize(const factsweep_nf4 *t, size_t lo, size_t hi, float *out, int path);

/// The same rounded to bf16 (nearest even, NaN kept a quiet NaN: the rounding
/// of `bfloat16Bits` in Swift), written as bits: half the bytes.
void factsweep_nf4_dequantize_bf16(const factsweep_nf4 *t, size_t lo, size_t hi, uint16_t *out, int path);

/// The same bf16 values kept in Float32 (exact there): QLoRA's base for bf16
/// products on a CPU without bf16 kernels, which multiply in f32.
void factsweep_nf4_dequantize_bf16_floats(const factsweep_nf4 *t, size_t lo, size_t hi, float *out, int path);

/// Rows r0 … r1 − 1 of the matrix (rows × columns, both multiples of 64;
/// r0 and r1 multiples of 16, or r1 = rows) as bf16 bits (rounded as
/// `factsweep_nf4_dequantize_bf16` rounds them) into `out`, laid out as
/// oneDNN's bf16 matmul reads a packed B on AVX-512 (`BA16a64b2a`): B = W
/// (out × in, the backward's dY · W) or, with `transposed`, B = Wᵀ (the
/// forward's X · Wᵀ). `out` holds rows × columns values. Dequantising
/// straight into that layout saves oneDNN re-blocking the plain rows inside
/// every product. Returns 0, writing nothing, when the sizes do not fit.
int factsweep_nf4_dequantize_bf16_vnni(const factsweep_nf4 *t, size_t rows, size_t columns, int transposed, size_t r0,
                                       size_t r1, uint16_t *out, int path);

/// The layout's column panels p0 … p1 − 1 of B (64 columns each, the
/// layout's outermost blocks: panel p at p · K · 64) in the same layout and
/// place as `factsweep_nf4_dequantize_bf16_vnni`: with `transposed` (B = Wᵀ)
/// W's rows 64·p0 … 64·p1 − 1, else (B = W) W's columns 64·p0 … 64·p1 − 1
/// over all its rows. Panels p0 … p1 − 1 are themselves that layout for the
/// K × 64·(p1 − p0) matrix they hold, so one thread can dequantise its own
/// panels and multiply by them alone. Returns 0, writing nothing, when the
/// sizes or the panels do not fit.
int factsweep_nf4_dequantize_bf16_vnni_panels(const factsweep_nf4 *t, size_t rows, size_t columns, int transposed, size_t p0,
                                              size_t p1, uint16_t *out, int path);

#endif
