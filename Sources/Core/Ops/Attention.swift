// Grouped-query causal self-attention over already-projected q, k, v, and its
// backward. The matrix products are per (batch, head) sgemm calls addressing
// heads inside the wider q/k/v rows through leading dimensions.
import CBLAS
import Foundation

/// Shapes of one attention call.
public struct AttentionShape: Sendable {
    public var batch: Int, seqLen: Int, heads: Int, kvHeads: Int, headDim: Int
    public init(batch: Int, seqLen: Int, heads: Int, kvHeads: Int, headDim: Int) {
        self.batch = batch; self.seqLen = seqLen; self.heads = heads; self.kvHeads = kvHeads; self.headDim = headDim
    }
    var qWidth: Int { heads * headDim }
    var kvWidth: Int { kvHeads * headDim }
    var group: Int { heads / kvHeads }
    var scale: Float { 1 / Float(headDim).squareRoot() }
}

/// - out: (B·T, H·hd); probs: (B, H, T, T) saved for backward (zero above the diagonal);
/// - q: (B·T, H·hd); k, v: (B·T, KV·hd). Query head h reads key/value head h / (H/KV).
/// Right padding needs no mask: a causal row never sees later (padded) positions.
public func attentionForward(
    _ out: FloatPointer, probs: FloatPointer, q: FloatPointer, k: FloatPointer, v: FloatPointer,
    shape s: AttentionShape, context: ComputeContext
) {
    let T = s.seqLen, hd = s.headDim
    context.withSingleThreadedBLAS {
        context.parallelFor(s.batch * s.heads) { units in
            for unit in units {
                let b = unit / s.heads, h = unit % s.heads, kvh = h / s.group
                let qh = q.base + b * T * s.qWidth + h * hd
                let kh = k.base + b * T * s.kvWidth + kvh * hd
                let vh = v.base + b * T * s.kvWidth + kvh * hd
                let p = probs.base + unit * T * T
                gemm(transA: false, transB: true, m: T, n: T, k: hd, alpha: s.scale,
                     a: qh, lda: s.qWidth, b: kh, ldb: s.kvWidth, beta: 0, c: p, ldc: T)
                causalSoftmaxRows(p, T)
                gemm(transA: false, transB: false, m: T, n: hd, k: T,
                     a: p, lda: T, b: vh, ldb: s.kvWidth, beta: 0,
                     c: out.base + b * T * s.qWidth + h * hd, ldc: s.qWidth)
            }
        }
    }
}

/// Row i of the (T, T) scores keeps columns 0...i, softmaxed; the rest become 0.
@inline(__always)
func causalSoftmaxRows(_ p: UnsafeMutablePointer<Float>, _ T: Int) {
    for i in 0..<T {
        let row = p + i * T
        softmaxInPlace(row, count: i + 1)
        for j in (i + 1)..<T { row[j] = 0 }
    }
}

/// row[0..<count] replaced by its softmax (max subtracted first).
@inline(__always)
func softmaxInPlace(_ row: UnsafeMutablePointer<Float>, count: Int) {
    var m = -Float.infinity
    for j in 0..<count { m = max(m, row[j]) }
    var sum: Float = 0
    for j in 0..<count {
        let e = expf(row[j] - m)
        row[j] = e
        sum += e
    }
    let inv = 1 / sum
    for j in 0..<count { row[j] *= inv }
}

/// Backward of `attentionForward`.
/// - dq: (B·T, H·hd) overwritten; dk, dv: (B·T, KV·hd) overwritten;
/// - dout: (B·T, H·hd); scratch: threads × T × T.
/// Work is split by (batch, kv head) so that the query heads sharing a
/// key/value head accumulate into it without racing.
public func attentionBackward(
    dq: FloatPointer, dk: FloatPointer, dv: FloatPointer, dout: FloatPointer,
    probs: FloatPointer, q: FloatPointer, k: FloatPointer, v: FloatPointer,
    shape s: AttentionShape, scratch: FloatPointer, context: ComputeContext
) {
    let T = s.seqLen, hd = s.headDim
    context.withSingleThreadedBLAS {
        context.parallelChunks(s.batch * s.kvHeads) { chunk, units in
            let dp = scratch.base + chunk * T * T
            for unit in units {
                let b = unit / s.kvHeads, kvh = unit % s.kvHeads
                let kh = k.base + b * T * s.kvWidth + kvh * hd, vh = v.base + b * T * s.kvWidth + kvh * hd
                let dkh = dk.base + b * T * s.kvWidth + kvh * hd, dvh = dv.base + b * T * s.kvWidth + kvh * hd
                for g in 0..<s.group {
                    let h = kvh * s.group + g
                    let first: Float = g == 0 ? 0 : 1
                    let qh = q.base + b * T * s.qWidth + h * hd
                    let doh = dout.base + b * T * s.qWidth + h * hd
                    let dqh = dq.base + b * T * s.qWidth + h * hd
                    let p = probs.base + (b * s.heads + h) * T * T
                    // dP = dO·Vᵀ; dV += Pᵀ·dO
                    gemm(transA: false, transB: true, m: T, n: T, k: hd,
                         a: doh, lda: s.qWidth, b: vh, ldb: s.kvWidth, beta: 0, c: dp, ldc: T)
                    gemm(transA: true, transB: false, m: T, n: hd, k: T,
                         a: p, lda: T, b: doh, ldb: s.qWidth, beta: first, c: dvh, ldc: s.kvWidth)
                    // dS = P ⊙ (dP − rowsum(P ⊙ dP)), zero above the diagonal.
                    for i in 0..<T {
                        let pr = p + i * T, dr = dp + i * T
                        var dot: Float = 0
                        for j in 0...i { dot += pr[j] * dr[j] }
                        for j in 0...i { dr[j] = pr[j] * (dr[j] - dot) }
                        for j in (i + 1)..<T { dr[j] = 0 }
                    }
                    // dQ = scale·dS·K; dK += scale·dSᵀ·Q
                    gemm(transA: false, transB: false, m: T, n: hd, k: T, alpha: s.scale,
                         a: dp, lda: T, b: kh, ldb: s.kvWidth, beta: 0, c: dqh, ldc: s.qWidth)
                    gemm(transA: true, transB: false, m: T, n: hd, k: T, alpha: s.scale,
                         a: dp, lda: T, b: qh, ldb: s.qWidth, beta: first, c: dkh, ldc: s.kvWidth)
                }
            }
        }
    }
}
