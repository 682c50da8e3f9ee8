// widest.h: builds a kernel for AVX-512, AVX2 and the x86-64 baseline; the
// loader picks the widest the CPU has (`target_clones`). Most machines of this
// project have AVX-512; AVX2-only ones (a Zen 3 VM) run the AVX2 builds, and
// the baseline keeps the build portable.
//
// Kernels with hand-written AVX-512 and AVX2 paths (nf4.c, bf16.c,
// few_rows.c) build them where FACTSWEEP_X86_PATHS is defined and choose one
// at run time with `kernel_isa`.
#ifndef FACTSWEEP_WIDEST_H
#define FACTSWEEP_WIDEST_H

#include "cpu.h"

#if defined(__x86_64__) && defined(__clang__)
#define WIDEST __attribute__((target_clones("avx512f", "avx2", "default")))
#define FACTSWEEP_X86_PATHS 1
#else
#define WIDEST
#endif

/// The instruction set a kernel's hand-written paths run on for `path`
/// (`FACTSWEEP_PATH_*`): the widest the CPU has that `path` allows.
enum kernel_isa { ISA_PLAIN, ISA_AVX2, ISA_AVX512 };

static inline enum kernel_isa kernel_isa(int path) {
#ifdef FACTSWEEP_X86_PATHS
    if (path == FACTSWEEP_PATH_WIDEST && factsweep_cpu_has_avx512()) return ISA_AVX512;
    if ((path == FACTSWEEP_PATH_WIDEST || path == FACTSWEEP_PATH_AVX2) && factsweep_cpu_has_avx2()) return ISA_AVX2;
#endif
    (void)path;
    return ISA_PLAIN;
}

#endif
