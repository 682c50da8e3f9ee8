// cpu.c: see include/cpu.h.
#include "cpu.h"

int factsweep_cpu_has_avx512(void) {
#if defined(__x86_64__)
    // Asked once: the NF4 and bf16 kernels ask on every call. Threads racing
    // here all store the same answer.
    static int known = -1;
    if (known < 0) {
        __builtin_cpu_init();
        known = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
    }
    return known;
#else
    return 0;
#endif
}

int factsweep_cpu_has_avx2(void) {
#if defined(__x86_64__)
    // Asked once, as above: the few-rows kernel asks on every call.
    static int known = -1;
    if (known < 0) {
        __builtin_cpu_init();
        known = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    }
    return known;
#else
    return 0;
#endif
}
