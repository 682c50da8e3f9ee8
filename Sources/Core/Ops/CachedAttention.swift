// Cached attention: grouped-query causal attention of a few new tokens per
// sequence against a key/value cache holding each sequence's earlier tokens.
// The inference twin of `attentionForward` (Attention.swift); no backward.
// Each (sequence, head) runs `factsweep_cached_attention` (CKernels): at one
// to a few rows per sequence, per-head sgemm calls cost more in call overhead
// than in arithmetic.
import CKernels
import Foundation

/// Shapes of one cached attention call: B sequences against caches of
/// `cacheLength` positions each.
public struct CachedAttentionShape: Sendable {
    public var batch: Int, cacheLength: Int, heads: Int, kvHeads: Int, headDim: Int
    public init(batch: Int, cacheLength: Int, heads: Int, kvHeads: Int, headDim: Int) {
        self.batch = batch; self.cacheLength = cacheLength
        self.heads = heads; self.kvHeads = kvHeads; self.headDim = headDim
    }
    var qWidth: Int { heads * headDim }
    var kvWidth: Int { kvHeads * headDim }
    var group: Int { heads / kvHeads }
    var scale: Float { 1 / Float(headDim).squareRoot() }
}

/// Attention of sequence b's `lengths[b]` new tokens, at positions
/// `start[b]…`, over its cached keys and values at positions
/// 0..<start[b] + lengths[b] (the new tokens' own already written).
/// Rows are packed: sequence b's rows follow sequence b−1's, with no padding
/// (a sequence of length 0 has none).
/// - out: (Σ lengths, H·hd); q: (Σ lengths, H·hd) after RoPE;
/// - keys, values: (B, cacheLength, KV·hd), after RoPE for keys. Query head h
///   reads key/value head h / (H/KV);
/// - scores: (threads, cacheLength) scratch.
/// Row t of sequence b sees keys ≤ start[b] + t (causal).
/// Inside `ProductPrecision.run(.bf16)` both products take bf16 inputs and
/// sum in f32, as training's attention products do (autocast's attention).
public func cachedAttentionForward(
    _ out: FloatPointer, q: FloatPointer, keys: FloatPointer, values: FloatPointer, start: [Int], lengths: [Int],
    shape s: CachedAttentionShape, scores: FloatPointer, context: ComputeContext
) {
    let hd = s.headDim, L = s.cacheLength, Q = s.qWidth, K = s.kvWidth
    precondition(start.count == s.batch && lengths.count == s.batch)
    precondition(zip(start, lengths).allSatisfy { $0 >= 0 && $1 >= 0 && $0 + $1 <= L }, "cached attention beyond the cache")
    var firstRow = [Int](repeating: 0, count: s.batch)
    for b in 1..<max(1, s.batch) { firstRow[b] = firstRow[b - 1] + lengths[b - 1] }
    let bf16: Int32 = ProductPrecision.current == .bf16 ? 1 : 0  // the calling thread's, for every chunk
    context.parallelChunks(s.batch * s.heads) { chunk, units in
        let scratch = scores.base + chunk * L
        for unit in units {
            let b = unit / s.heads, h = unit % s.heads, kvh = h / s.group
            guard lengths[b] > 0 else { continue }
            let row = firstRow[b] * Q + h * hd, cache = b * L * K + kvh * hd
            factsweep_cached_attention(out.base + row, q.base + row, Q, keys.base + cache, values.base + cache, K,
                                       hd, start[b], lengths[b], s.scale, scratch, bf16)
        }
    }
}
