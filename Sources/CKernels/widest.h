// widest.h: builds a kernel for AVX-512, AVX2 and the x86-64 baseline; the
// loader picks the widest the CPU has (`target_clones`). Most machines of this
// project have AVX-512; AVX2-only ones (a Zen 3 VM) run the AVX2 builds, and
// the baseline keeps the build portable.
#ifndef FACTSWEEP_WIDEST_H
#define FACTSWEEP_WIDEST_H

#if defined(__x86_64__) && defined(__clang__)
#define WIDEST __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define WIDEST
#endif

#endif
