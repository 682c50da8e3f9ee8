// Grouped-query causal self-attention over already-projected q, k, v, and its
// backward. The matrix products are per (sequence, head) `gemm` calls addressing
// heads inside the wider q/k/v rows through leading dimensions.
import CBLAS
import CKernels
import Foundation

/// Shapes of one attention call: B sequences laid end to end, sequence b
/// holding `lengths[b]` rows from row `starts[b]`.
public struct AttentionShape: Sendable {
    public var heads: Int, kvHeads: Int, headDim: Int
    public let lengths: [Int], starts: [Int]
    /// The longest sequence: probs and scratch hold T × T per (sequence, head).
    public let seqLen: Int

    /// Sequences of the given lengths laid end to end.
    public init(lengths: [Int], heads: Int, kvHeads: Int, headDim: Int) {
        self.heads = heads; self.kvHeads = kvHeads; self.headDim = headDim
        self.lengths = lengths
        var starts: [Int] = [], row = 0
        for length in lengths { starts.append(row); row += length }
        self.starts = starts
        self.seqLen = lengths.max() ?? 0
    }

    /// B sequences of T rows each.
    public init(batch: Int, seqLen: Int, heads: Int, kvHeads: Int, headDim: Int) {
        self.init(lengths: Array(repeating: seqLen, count: batch), heads: heads, kvHeads: kvHeads, headDim: headDim)
    }

    public var batch: Int { lengths.count }
    var qWidth: Int { heads * headDim }
    var kvWidth: Int { kvHeads * headDim }
    var group: Int { heads / kvHeads }
    var scale: Float { 1 / Float(headDim).squareRoot() }
}

/// - out: (N, H·hd), N = Σ lengths; probs: (B, H, T, T) saved for backward,
///   sequence b's L × L scores (row stride L) at the start of its slot, zero
///   above the diagonal;
/// - q: (N, H·hd); k, v: (N, KV·hd). Query head h reads key/value head h / (H/KV).
/// Each sequence attends only within itself. A right-padded sequence needs
/// no mask either: a causal row never sees later (padded) positions.
public func attentionForward(
    _ out: FloatPointer, probs: FloatPointer, q: FloatPointer, k: FloatPointer, v: FloatPointer,
    shape s: AttentionShape, context: ComputeContext
) {
    let T = s.seqLen, hd = s.headDim
    context.withSingleThreadedBLAS {
        context.parallelFor(s.batch * s.heads) { units in
            for unit in units {
                let b = unit / s.heads, h = unit % s.heads, kvh = h / s.group
                let L = s.lengths[b], row = s.starts[b]
                guard L > 0 else { continue }
                let qh = q.base + row * s.qWidth + h * hd
                let kh = k.base + row * s.kvWidth + kvh * hd
                let vh = v.base + row * s.kvWidth + kvh * hd
                let p = probs.base + unit * T * T
                gemm(transA: false, transB: true, m: L, n: L, k: hd, alpha: s.scale,
                     a: qh, lda: s.qWidth, b: kh, ldb: s.kvWidth, beta: 0, c: p, ldc: L)
                causalSoftmaxRows(p, L)
                gemm(transA: false, transB: false, m: L, n: hd, k: L,
                     a: p, lda: L, b: vh, ldb: s.kvWidth, beta: 0,
                     c: out.base + row * s.qWidth + h * hd, ldc: s.qWidth)
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

/// row[0..<count] replaced by its softmax (max subtracted first; CKernels'
/// softmax.c, its exponentials vectorised).
@inline(__always)
func softmaxInPlace(_ row: UnsafeMutablePointer<Float>, count: Int) {
    factsweep_softmax_row(row, count)
}

/// Backward of `attentionForward`.
/// - dq: (N, H·hd) overwritten; dk, dv: (N, KV·hd) overwritten;
/// - dout: (N, H·hd); scratch: threads × T × T.
/// Work is split by (sequence, kv head) so that the query heads sharing a
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
                let L = s.lengths[b], row = s.starts[b]
                guard L > 0 else { continue }
                let kh = k.base + row * s.kvWidth + kvh * hd, vh = v.base + row * s.kvWidth + kvh * hd
                let dkh = dk.base + row * s.kvWidth + kvh * hd, dvh = dv.base + row * s.kvWidth + kvh * hd
                // In bf16 each operand read twice (K and V by every query head of the group, dO and dS by two products each) is rounded once.
                sharingBFloat16Copy(of: FloatPointer(kh), rows: L, columns: hd, ld: s.kvWidth) {
                    sharingBFloat16Copy(of: FloatPointer(vh), rows: L, columns: hd, ld: s.kvWidth) {
                        for g in 0..<s.group {
                            let h = kvh * s.group + g
                            let first: Float = g == 0 ? 0 : 1
                            let qh = q.base + row * s.qWidth + h * hd
                            let doh = dout.base + row * s.qWidth + h * hd
                            let dqh = dq.base + row * s.qWidth + h * hd
                            let p = probs.base + (b * s.heads + h) * T * T
                            // dP = dO·Vᵀ; dV += Pᵀ·dO
                            sharingBFloat16Copy(of: FloatPointer(doh), rows: L, columns: hd, ld: s.qWidth) {
                                gemm(transA: false, transB: true, m: L, n: L, k: hd,
                                     a: doh, lda: s.qWidth, b: vh, ldb: s.kvWidth, beta: 0, c: dp, ldc: L)
                                gemm(transA: true, transB: false, m: L, n: hd, k: L,
                                     a: p, lda: L, b: doh, ldb: s.qWidth, beta: first, c: dvh, ldc: s.kvWidth)
                            }
                            // dS = P ⊙ (dP − rowsum(P ⊙ dP)), zero above the diagonal.
                            for i in 0..<L {
                                let pr = p + i * L, dr = dp + i * L
                                var dot: Float = 0
                                for j in 0...i { dot += pr[j] * dr[j] }
                                for j in 0...i { dr[j] = pr[j] * (dr[j] - dot) }
                                for j in (i + 1)..<L { dr[j] = 0 }
                            }
                            // dQ = scale·dS·K; dK += scale·dSᵀ·Q
                            sharingBFloat16Copy(of: FloatPointer(dp), rows: L, columns: L) {
                                gemm(transA: false, transB: false, m: L, n: hd, k: L, alpha: s.scale,
                                     a: dp, lda: L, b: kh, ldb: s.kvWidth, beta: 0, c: dqh, ldc: s.qWidth)
                                gemm(transA: true, transB: false, m: L, n: hd, k: L, alpha: s.scale,
                                     a: dp, lda: L, b: qh, ldb: s.qWidth, beta: first, c: dkh, ldc: s.kvWidth)
                            }
                        }
                    }
                }
            }
        }
    }
}
