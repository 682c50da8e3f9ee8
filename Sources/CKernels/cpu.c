// cpu.c: see include/cpu.h.
#include "cpu.h"

int factsweep_cpu_has_avx512(void) {
#if defined(__x86_64__)
    // Asked once: the NF4, bf16 and few-rows kernels ask on every call.
    // Threads racing here all store the same answer (relaxed atomics: no
    // ordering is needed, only a well-defined read).
    static int known = -1;
    int answer = __atomic_load_n(&known, __ATOMIC_RELAXED);
    if (answer < 0) {
        __builtin_cpu_init();
        answer = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                 __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
        __atomic_store_n(&known, answer, __ATOMIC_RELAXED);
    }
    return answer;
#else
    return 0;
#endif
}

int factsweep_cpu_has_avx512bf16(void) {
#if defined(__x86_64__)
    // Asked once, as above.
    static int known = -1;
    int answer = __atomic_load_n(&known, __ATOMIC_RELAXED);
    if (answer < 0) {
        __builtin_cpu_init();
        answer = factsweep_cpu_has_avx512() && __builtin_cpu_supports("avx512bf16");
        __atomic_store_n(&known, answer, __ATOMIC_RELAXED);
    }
    return answer;
#else
    return 0;
#endif
}

int factsweep_cpu_has_avx2(void) {
#if defined(__x86_64__)
    // Asked once, as above.
    static int known = -1;
    int answer = __atomic_load_n(&known, __ATOMIC_RELAXED);
    if (answer < 0) {
        __builtin_cpu_init();
        answer = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
        __atomic_store_n(&known, answer, __ATOMIC_RELAXED);
    }
    return answer;
#else
    return 0;
#endif
}
