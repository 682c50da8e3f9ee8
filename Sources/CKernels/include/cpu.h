// cpu.h: what the CPU can run, from CPUID (GCC/Clang's __builtin_cpu_supports).
#ifndef FACTSWEEP_CPU_H
#define FACTSWEEP_CPU_H

/// 1 when the CPU runs AVX-512 F, BW, DQ and VL (what OpenBLAS's SkylakeX kernels use), else 0;
/// the kernels' AVX-512 paths (nf4.c, bf16.c, few_rows.c, and widest.h's builds) ask it too. 0 under
/// `FACTSWEEP_MAX_CPU_ISA=avx2` (below).
int factsweep_cpu_has_avx512(void);

/// 1 when the CPU also converts Float32 to bf16 itself (AVX512_BF16): bf16.c's
/// rounding takes its vcvtne2ps2bf16 where it rounds as PyTorch does.
int factsweep_cpu_has_avx512bf16(void);

/// 1 when the CPU runs AVX2 and FMA (OpenBLAS's Haswell kernels), else 0;
/// the AVX2 paths of nf4.c and few_rows.c, and widest.h's AVX2 builds, ask it.
int factsweep_cpu_has_avx2(void);

/// Which of widest.h's builds a kernel runs now (`kernel_isa`: 0 plain, 1 AVX2,
/// 2 AVX-512), for the test that checks `FACTSWEEP_MAX_CPU_ISA` reaches them.
int factsweep_widest_isa(void);

/// 1 under the environment's `FACTSWEEP_MAX_CPU_ISA=avx2` (any case): the
/// kernels answer as on a CPU without AVX-512 and oneDNN is held to its AVX2
/// kernels (`OneDNNMatmul`), so that an AVX-512 machine runs, and its tests
/// check, the code an AVX2-only host runs (scripts/test.sh's second pass).
int factsweep_cpu_capped_to_avx2(void);

/// Which code a kernel with several (nf4.c, few_rows.c) may run, for the tests
/// that compare them: the widest the CPU has (AVX-512, else AVX2), at most
/// AVX2, or the plain C loop. Swift: `KernelPath`.
enum { FACTSWEEP_PATH_WIDEST = 0, FACTSWEEP_PATH_PORTABLE = 1, FACTSWEEP_PATH_AVX2 = 2 };

#endif
