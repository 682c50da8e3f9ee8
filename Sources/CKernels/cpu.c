// cpu.c: see include/cpu.h.
#include "cpu.h"
#include "widest.h"

#include <stdlib.h>
#include <strings.h>

#if defined(__x86_64__)
/// `probe()` asked once and kept in `*known` (-1 until then): the NF4, bf16
/// and few-rows kernels ask on every call. Threads racing here all store the
/// same answer (relaxed atomics: no ordering is needed, only a well-defined read).
static int asked_once(int *known, int (*probe)(void)) {
    int answer = __atomic_load_n(known, __ATOMIC_RELAXED);
    if (answer < 0) {
        __builtin_cpu_init();
        answer = probe();
        __atomic_store_n(known, answer, __ATOMIC_RELAXED);
    }
    return answer;
}

static int probe_avx512(void) {
    if (factsweep_cpu_capped_to_avx2()) return 0;
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
           __builtin_cpu_supports("avx512vl");
}

static int probe_avx512bf16(void) { return probe_avx512() && __builtin_cpu_supports("avx512bf16"); }

static int probe_avx2(void) { return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"); }
#endif

int factsweep_cpu_has_avx512(void) {
#if defined(__x86_64__)
    static int known = -1;
    return asked_once(&known, probe_avx512);
#else
    return 0;
#endif
}

int factsweep_cpu_has_avx512bf16(void) {
#if defined(__x86_64__)
    static int known = -1;
    return asked_once(&known, probe_avx512bf16);
#else
    return 0;
#endif
}

int factsweep_cpu_has_avx2(void) {
#if defined(__x86_64__)
    static int known = -1;
    return asked_once(&known, probe_avx2);
#else
    return 0;
#endif
}

int factsweep_cpu_capped_to_avx2(void) {
    const char *cap = getenv("FACTSWEEP_MAX_CPU_ISA");
    return cap != NULL && strcasecmp(cap, "avx2") == 0;
}

int factsweep_widest_isa(void) { return (int)kernel_isa(FACTSWEEP_PATH_WIDEST); }
