// Cached attention: grouped-query causal attention of a few new tokens per
// sequence against a key/value cache holding each sequence's earlier tokens.
// The inference twin of `attentionForward` (Attention.swift): the same
// per-head sgemm products, each sequence at its own position; no backward.
import Foundation

/// Shapes of one cached attention call: B sequences of up to T new rows each,
/// against caches of `cacheLength` positions per sequence.
public struct CachedAttentionShape: Sendable {
    public var batch: Int, rows: Int, cacheLength: Int, heads: Int, kvHeads: Int, headDim: Int
    public init(batch: Int, rows: Int, cacheLength: Int, heads: Int, kvHeads: Int, headDim: Int) {
        self.batch = batch; self.rows = rows; self.cacheLength = cacheLength
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
/// - out: (B·T, H·hd): row b·T + t for t < lengths[b]; the rows after a
///   sequence's length (padding) are set to 0;
/// - q: (B·T, H·hd) after RoPE, laid out like `out`;
/// - keys, values: (B, cacheLength, KV·hd), after RoPE for keys. Query head h
///   reads key/value head h / (H/KV);
/// - scores: (threads, T, cacheLength) scratch.
/// Row t of sequence b sees keys ≤ start[b] + t (causal).
public func cachedAttentionForward(
    _ out: FloatPointer, q: FloatPointer, keys: FloatPointer, values: FloatPointer, start: [Int], lengths: [Int],
    shape s: CachedAttentionShape, scores: FloatPointer, context: ComputeContext
) {
    let T = s.rows, hd = s.headDim, L = s.cacheLength, Q = s.qWidth, K = s.kvWidth
    context.withSingleThreadedBLAS {
        context.parallelChunks(s.batch * s.heads) { chunk, units in
            let scratch = scores.base + chunk * T * L
            for unit in units {
                let b = unit / s.heads, h = unit % s.heads, kvh = h / s.group
                let rows = lengths[b], visibleKeys = start[b] + rows
                guard rows > 0 else { continue }
                let kh = keys.base + b * L * K + kvh * hd, vh = values.base + b * L * K + kvh * hd
                // scores (rows, keys) = q_h · Kᵀ · scale; softmax over the keys each row sees; out = scores · V
                gemm(transA: false, transB: true, m: rows, n: visibleKeys, k: hd, alpha: s.scale,
                     a: q.base + b * T * Q + h * hd, lda: Q, b: kh, ldb: K, beta: 0, c: scratch, ldc: visibleKeys)
                for t in 0..<rows {
                    let row = scratch + t * visibleKeys, visible = start[b] + t + 1
                    softmaxInPlace(row, count: visible)
                    (row + visible).update(repeating: 0, count: visibleKeys - visible)
                }
                gemm(transA: false, transB: false, m: rows, n: hd, k: visibleKeys,
                     a: scratch, lda: visibleKeys, b: vh, ldb: K, beta: 0, c: out.base + b * T * Q + h * hd, ldc: Q)
            }
        }
    }
    for (b, length) in lengths.enumerated() where length < T {
        (out.base + (b * T + length) * Q).update(repeating: 0, count: (T - length) * Q)
    }
}
