// cpu.h: what the CPU can run, from CPUID (GCC/Clang's __builtin_cpu_supports).
#ifndef FACTSWEEP_CPU_H
#define FACTSWEEP_CPU_H

/// 1 when the CPU runs AVX-512 F, BW, DQ and VL (what OpenBLAS's SkylakeX kernels use), else 0;
/// the kernels' AVX-512 paths (nf4.c, bf16.c) ask it too.
int factsweep_cpu_has_avx512(void);

/// 1 when the CPU runs AVX2 and FMA (OpenBLAS's Haswell kernels), else 0.
int factsweep_cpu_has_avx2(void);

#endif
