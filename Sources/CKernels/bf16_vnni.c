// bf16_vnni.c: see factsweep_bf16_round_vnni in include/bf16.h.
#include "bf16.h"

#include "bf16_round.h"
#include "vnni.h"

/// One value at a time, each to its place in both layouts.
static void round_vnni_portable(const float *w, size_t rows, size_t columns, size_t r0, size_t r1, uint16_t *forward,
                                uint16_t *backward) {
    for (size_t r = r0; r < r1; r++) {
        for (size_t c = 0; c < columns; c++) {
            uint16_t bits = bf16_bits(w[r * columns + c]);
            forward[vnni_offset(columns, c, r)] = bits;
            backward[vnni_offset(rows, r, c)] = bits;
        }
    }
}

#ifdef FACTSWEEP_X86_PATHS
/// 16 rows at a time, 32 columns at a time: each row's 32 values rounded
/// once into a register (`bf16_bits32`, or `bf16_bits32_converted` where
/// the CPU has AVX512_BF16). Backward (B = W): two rows' registers interleave
/// word by word into 64 contiguous words. Forward (B = Wᵀ): a pair of
/// consecutive columns of one row is one 32-bit value, and after a 16 × 16
/// transpose pair j of the 16 rows is 64 contiguous bytes. Every store
/// writes a whole, aligned cache line, past the caches (non-temporal): the
/// copies are read back by the next products from memory anyway (a copy of
/// all the weights), and ordinary stores would first read each line in.
#define ROUND_VNNI_BODY(WORDS)                                                                                          \
    const __m512i low = _mm512_loadu_si512(pairs_low), high = _mm512_loadu_si512(pairs_high);                         \
    for (size_t r = r0; r < r1; r += 16) {                                                                              \
        uint16_t *group = forward + (r / 64) * (columns * 64) + (r % 64) * 2;                                          \
        for (size_t c = 0; c < columns; c += 32) {                                                                      \
            __m512i x[16];                                                                                              \
            for (int i = 0; i < 16; i++) x[i] = WORDS(w + (r + i) * columns + c);                                      \
            for (int i = 0; i < 16; i += 2) {                                                                           \
                uint16_t *at = backward + vnni_offset(rows, r + i, c);                                                  \
                _mm512_stream_si512((void *)at, _mm512_permutex2var_epi16(x[i], low, x[i + 1]));                       \
                _mm512_stream_si512((void *)(at + 32), _mm512_permutex2var_epi16(x[i], high, x[i + 1]));               \
            }                                                                                                           \
            transpose16(x);                                                                                             \
            for (int j = 0; j < 16; j++) _mm512_stream_si512((void *)(group + (c / 32) * 2048 + j * 128), x[j]);       \
        }                                                                                                               \
    }                                                                                                                   \
    _mm_sfence();

__attribute__((target("avx512f,avx512bw"))) static void round_vnni_avx512(const float *w, size_t rows, size_t columns, size_t r0,
                                                                         size_t r1, uint16_t *forward, uint16_t *backward) {
    ROUND_VNNI_BODY(bf16_bits32)
}

__attribute__((target("avx512f,avx512bw,avx512bf16"))) static void round_vnni_avx512bf16(const float *w, size_t rows, size_t columns,
                                                                                        size_t r0, size_t r1, uint16_t *forward,
                                                                                        uint16_t *backward) {
    ROUND_VNNI_BODY(bf16_bits32_converted)
}
#endif

int factsweep_bf16_round_vnni(const float *w, size_t rows, size_t columns, size_t r0, size_t r1, uint16_t *forward,
                              uint16_t *backward, int path) {
    if (rows % 64 || columns % 64 || r0 % 16 || r1 % 16 || r0 > r1 || r1 > rows) return 0;
#ifdef FACTSWEEP_X86_PATHS
    // Non-temporal stores need 64-byte aligned copies.
    if (kernel_isa(path) == ISA_AVX512 && ((uintptr_t)forward | (uintptr_t)backward) % 64 == 0) {
        if (factsweep_cpu_has_avx512bf16()) round_vnni_avx512bf16(w, rows, columns, r0, r1, forward, backward);
        else round_vnni_avx512(w, rows, columns, r0, r1, forward, backward);
        return 1;
    }
#endif
    (void)path;
    round_vnni_portable(w, rows, columns, r0, r1, forward, backward);
    return 1;
}
