// cached_attention.h: attention of one query head's few new tokens over one
// sequence's key/value cache, for decoding and draft verification. In C so
// that the 64-float dot products and the value sums are vectorised: per-head
// sgemm calls (what training's attention uses) spend more time in call and
// packing overhead than in arithmetic at one to a few rows, and their count
// (sequences × heads × layers × 2 per step) made attention the part of a
// decoding step that grew with the answer.
#ifndef FACTSWEEP_CACHED_ATTENTION_H
#define FACTSWEEP_CACHED_ATTENTION_H

#include <stddef.h>

/// Row t (t < rows) of the new tokens, at position start + t, attends to the
/// cached positions 0 … start + t:
///   s_j = scale · q_t·k_j;  p = softmax(s);  out_t = Σ_j p_j · v_j.
/// - q, out: `rows` rows of head_dim floats, `row_stride` floats apart;
/// - keys, values: cache rows of this head's key/value head, head_dim floats
///   each, `cache_stride` floats apart (the new tokens' own already written);
/// - scores: scratch of start + rows floats;
/// - bf16_inputs: both products take bf16 inputs and sum in f32, as
///   training's attention does under bf16 autocast (q and k rounded for the
///   scores; the probabilities and v rounded for the output); softmax in f32.
void factsweep_cached_attention(float *out, const float *q, size_t row_stride,
                                const float *keys, const float *values, size_t cache_stride,
                                size_t head_dim, size_t start, size_t rows, float scale, float *scores,
                                int bf16_inputs);

#endif
