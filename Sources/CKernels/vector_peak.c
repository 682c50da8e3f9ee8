// vector_peak.c: see include/vector_peak.h.
#include "vector_peak.h"

#include "widest.h"

/// What the loop runs on this CPU; `run` and `instruction` both ask it, so
/// that the name printed is the instruction timed.
enum peak_kind { PEAK_NONE, PEAK_FMA_YMM, PEAK_FMA_ZMM, PEAK_DOT_BF16_ZMM };

static enum peak_kind peak_kind(int bf16) {
#ifdef FACTSWEEP_X86_PATHS
    switch (kernel_isa(FACTSWEEP_PATH_WIDEST)) {
    case ISA_AVX512: return bf16 && factsweep_cpu_has_avx512bf16() ? PEAK_DOT_BF16_ZMM : PEAK_FMA_ZMM;
    case ISA_AVX2: return PEAK_FMA_YMM;
    case ISA_PLAIN: return PEAK_NONE;
    }
#endif
    (void)bf16;
    return PEAK_NONE;
}

#ifdef FACTSWEEP_X86_PATHS
#include <immintrin.h>

/// One multiply-add into each of twelve accumulators, as assembly: written
/// in C the twelve chains would be the compiler's to merge, reorder or drop
/// (they compute alike), and the loop would no longer time the instruction.
/// Each instruction reads and writes its own accumulator ("+v"); `m` and `c`
/// stay in registers, so nothing but the multiply-adds is issued.
#define TWELVE(OP)                                                                                            \
    __asm__ volatile(OP " %[m], %[c], %[x0]\n\t" OP " %[m], %[c], %[x1]\n\t" OP " %[m], %[c], %[x2]\n\t"    \
                     OP " %[m], %[c], %[x3]\n\t" OP " %[m], %[c], %[x4]\n\t" OP " %[m], %[c], %[x5]\n\t"    \
                     OP " %[m], %[c], %[x6]\n\t" OP " %[m], %[c], %[x7]\n\t" OP " %[m], %[c], %[x8]\n\t"    \
                     OP " %[m], %[c], %[x9]\n\t" OP " %[m], %[c], %[x10]\n\t" OP " %[m], %[c], %[x11]"      \
                     : [x0] "+v"(x[0]), [x1] "+v"(x[1]), [x2] "+v"(x[2]), [x3] "+v"(x[3]), [x4] "+v"(x[4]),  \
                       [x5] "+v"(x[5]), [x6] "+v"(x[6]), [x7] "+v"(x[7]), [x8] "+v"(x[8]), [x9] "+v"(x[9]),  \
                       [x10] "+v"(x[10]), [x11] "+v"(x[11])                                                   \
                     : [m] "v"(m), [c] "v"(c))

/// Σ over the twelve accumulators of (index + 1) × the sum of its `width`
/// lanes, in double: weighted, so that an instruction writing another's
/// accumulator changes it too.
static double weighted_sum(const float *lanes, int width) {
    double sum = 0;
    for (int i = 0; i < 12; i++)
        for (int l = 0; l < width; l++) sum += (i + 1) * (double)lanes[i * width + l];
    return sum;
}

/// The body of each kernel below, once `m` and `c` are set: the twelve
/// accumulators start at their index, run `rounds` rounds of OP, and leave
/// their weighted sum; returns the operations done, `PER_LANE` a lane per
/// instruction.
#define ROUNDS_OF(OP, SET1, STORE, WIDTH, PER_LANE)                                   \
    for (int i = 0; i < 12; i++) x[i] = SET1((float)i);                               \
    for (long r = 0; r < rounds; r++) TWELVE(OP);                                    \
    float lanes[12 * WIDTH];                                                          \
    for (int i = 0; i < 12; i++) STORE(lanes + WIDTH * i, x[i]);                     \
    *checksum = weighted_sum(lanes, WIDTH);                                           \
    return (double)rounds * 12 * WIDTH * PER_LANE

__attribute__((target("avx512f"))) static double fma_zmm(long rounds, double *checksum) {
    __m512 x[12], m = _mm512_set1_ps(0.5f), c = _mm512_set1_ps(0.25f);
    ROUNDS_OF("vfmadd231ps", _mm512_set1_ps, _mm512_storeu_ps, 16, 2);
}

/// Each lane adds two products: 4 operations.
__attribute__((target("avx512f,avx512bf16"))) static double dot_bf16_zmm(long rounds, double *checksum) {
    __m512 x[12];
    // bf16 0.5 and 0.25 in every word.
    __m512bh m = (__m512bh)_mm512_set1_epi16(0x3f00), c = (__m512bh)_mm512_set1_epi16(0x3e80);
    ROUNDS_OF("vdpbf16ps", _mm512_set1_ps, _mm512_storeu_ps, 16, 4);
}

__attribute__((target("avx2,fma"))) static double fma_ymm(long rounds, double *checksum) {
    __m256 x[12], m = _mm256_set1_ps(0.5f), c = _mm256_set1_ps(0.25f);
    ROUNDS_OF("vfmadd231ps", _mm256_set1_ps, _mm256_storeu_ps, 8, 2);
}
#endif

double factsweep_vector_peak_run(long rounds, int bf16, double *checksum) {
    *checksum = 0;
    if (rounds <= 0) return 0;
#ifdef FACTSWEEP_X86_PATHS
    switch (peak_kind(bf16)) {
    case PEAK_DOT_BF16_ZMM: return dot_bf16_zmm(rounds, checksum);
    case PEAK_FMA_ZMM: return fma_zmm(rounds, checksum);
    case PEAK_FMA_YMM: return fma_ymm(rounds, checksum);
    case PEAK_NONE: return 0;
    }
#endif
    return 0;
}

const char *factsweep_vector_peak_instruction(int bf16) {
    switch (peak_kind(bf16)) {
    case PEAK_DOT_BF16_ZMM: return "vdpbf16ps zmm";
    case PEAK_FMA_ZMM: return "vfmadd231ps zmm";
    case PEAK_FMA_YMM: return "vfmadd231ps ymm";
    case PEAK_NONE: return 0;
    }
    return 0;
}
