// widest.h: builds a kernel for AVX-512, AVX2 and the x86-64 baseline, and
// runs the widest the CPU has (`kernel_isa`, asked at each call). Most
// machines of this project have AVX-512; AVX2-only ones (a Zen 3 VM) run the
// AVX2 builds, and the baseline keeps the build portable. The choice is made
// here rather than by the loader (`target_clones`) so that
// `FACTSWEEP_MAX_CPU_ISA=avx2` (cpu.h) reaches these kernels too: the tests'
// AVX2 pass then runs the builds an AVX2 host runs, not the AVX-512 ones.
//
// Kernels with hand-written AVX-512 and AVX2 paths (nf4.c, bf16.c,
// few_rows.c) build them where FACTSWEEP_X86_PATHS is defined and choose one
// at run time with `kernel_isa`.
#ifndef FACTSWEEP_WIDEST_H
#define FACTSWEEP_WIDEST_H

#include "cpu.h"

#if defined(__x86_64__) && defined(__clang__)
#define FACTSWEEP_X86_PATHS 1
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

/// `WIDEST_VOID(name, (params), (args)) { body }` defines the kernel `name`
/// (declared in its header) from `body`: the body is inlined into an AVX-512,
/// an AVX2 and a plain build, and each call runs the one `kernel_isa` picks.
/// `WIDEST_RETURNING(type, name, (params), (args))` for a kernel that returns.
#ifdef FACTSWEEP_X86_PATHS
#define WIDEST_BUILDS(type, name, params, args)                                                      \
    static inline __attribute__((always_inline)) type name##_body params;                           \
    __attribute__((target("avx512f"))) static type name##_avx512 params { return name##_body args; } \
    __attribute__((target("avx2"))) static type name##_avx2 params { return name##_body args; }      \
    static type name##_plain params { return name##_body args; }
#define WIDEST_VOID(name, params, args)                                                              \
    static inline __attribute__((always_inline)) void name##_body params;                           \
    __attribute__((target("avx512f"))) static void name##_avx512 params { name##_body args; }        \
    __attribute__((target("avx2"))) static void name##_avx2 params { name##_body args; }             \
    static void name##_plain params { name##_body args; }                                            \
    void name params {                                                                                \
        switch (kernel_isa(FACTSWEEP_PATH_WIDEST)) {                                                  \
        case ISA_AVX512: name##_avx512 args; return;                                                 \
        case ISA_AVX2: name##_avx2 args; return;                                                     \
        case ISA_PLAIN: name##_plain args; return;                                                   \
        }                                                                                             \
    }                                                                                                 \
    static inline __attribute__((always_inline)) void name##_body params
#define WIDEST_RETURNING(type, name, params, args)                                                   \
    WIDEST_BUILDS(type, name, params, args)                                                          \
    type name params {                                                                                \
        switch (kernel_isa(FACTSWEEP_PATH_WIDEST)) {                                                  \
        case ISA_AVX512: return name##_avx512 args;                                                  \
        case ISA_AVX2: return name##_avx2 args;                                                      \
        case ISA_PLAIN: break;                                                                        \
        }                                                                                             \
        return name##_plain args;                                                                     \
    }                                                                                                 \
    static inline __attribute__((always_inline)) type name##_body params
#else
#define WIDEST_VOID(name, params, args) void name params
#define WIDEST_RETURNING(type, name, params, args) type name params
#endif

#endif
