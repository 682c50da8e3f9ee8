// vector_peak.h: the machine's arithmetic ceiling, measured by the
// instructions matrix products are made of.
#ifndef FACTSWEEP_VECTOR_PEAK_H
#define FACTSWEEP_VECTOR_PEAK_H

/// Runs `rounds` rounds of twelve independent vector multiply-adds on one
/// thread and returns the floating-point operations done (2 per product and
/// lane). The twelve accumulators hide the instruction's latency, so the loop
/// runs at the core's issue rate for it: with no loads at all, an upper bound
/// on what a matrix product on this core's vector units can reach
/// (docs/benchmarks.md, "the cores' own ceiling").
///
/// f32 (`bf16` 0): `vfmadd231ps` on the widest registers `kernel_isa` allows
/// (zmm on AVX-512, ymm on AVX2). bf16 (`bf16` 1) on a CPU with AVX512_BF16:
/// `vdpbf16ps` on zmm, two products per f32 lane, as oneDNN's bf16 matmul
/// runs; without it bf16 products run on f32 arithmetic, and so does this.
/// Returns 0 where there is no vector path: a build that is not x86-64 with
/// clang, or a CPU without AVX2 and FMA.
///
/// `*checksum` receives Σ over accumulators i = 0…11 of (i + 1) × the sum
/// of its lanes at the end. Each lane starts at i and gains 0.5 × 0.25 per
/// product, so for rounds small enough to stay exact it is lanes × (572 +
/// 78 × products × 0.125 × rounds), which the tests check to know that each
/// of the twelve instructions ran once a round on its own accumulator with
/// its operands.
double factsweep_vector_peak_run(long rounds, int bf16, double *checksum);

/// The instruction `factsweep_vector_peak_run(_, bf16, _)` runs now, as
/// "vfmadd231ps zmm", or NULL where it runs none.
const char *factsweep_vector_peak_instruction(int bf16);

#endif
