// softmax.h: a row's softmax, and a row of softmax cross-entropy with its
// gradient. In C so that the exponentials are vectorised (glibc's libmvec,
// through -fveclib) and the maximum and sum run in 16 lanes: Swift called the
// scalar `expf` once per value and summed one value at a time. The loss (49,152
// logits per labelled row at SmolLM2's vocabulary) took 3–4% of a bf16 batch-8
// step, attention's softmax about 2% (perf).
#ifndef FACTSWEEP_SOFTMAX_H
#define FACTSWEEP_SOFTMAX_H

#include <stddef.h>

/// Replaces row[0..<count] by its softmax (the maximum subtracted first).
void factsweep_softmax_row(float *row, size_t count);

/// Replaces `row` (count logits) by (softmax(row) − onehot(target)) · scale and
/// returns −log softmax(row)[target].
float factsweep_cross_entropy_row(float *row, size_t count, size_t target, float scale);

/// One block of a softmax over a row whose logits come in blocks (the fused
/// head, FusedHead.swift): with M = *maximum and M' = max(M, max(row)),
/// replaces row[0..<count] by exp(row − M'), sets *sum = *sum · exp(M − M') +
/// Σ exp(row − M') and *maximum = M', and returns exp(M − M'): the factor
/// by which whatever was accumulated against M must be scaled (0 for the
/// first block, whose *maximum is −∞ and *sum 0).
float factsweep_online_softmax_block(float *row, size_t count, float *maximum, float *sum);

#endif
