// Grouped-query causal self-attention over already-projected q, k, v, and its
// backward. The matrix products are per (sequence, head) `gemm` calls addressing
// heads inside the wider q/k/v rows through leading dimensions.
import CBLAS
import CKernels
import Foundation

/// Shapes of one attention call: B sequences laid end to end, sequence b
/// holding `lengths[b]` rows from row `starts[b]`; every sequence after the
/// first also attends, before its own rows, to the first `prefix` rows of
/// the first (a prompt prefix they share, laid once: see `TokenBatch`).
public struct AttentionShape: Sendable {
    public var heads: Int, kvHeads: Int, headDim: Int
    public let lengths: [Int], starts: [Int]
    /// Rows at the start of sequence 0 that the later sequences attend to first.
    public let prefix: Int
    /// The most keys a sequence attends to: probs and scratch hold T × T per
    /// (sequence, head).
    public let seqLen: Int

    /// Sequences of the given lengths laid end to end, the later ones seeing
    /// `prefix` rows of the first before their own.
    public init(lengths: [Int], prefix: Int = 0, heads: Int, kvHeads: Int, headDim: Int) {
        precondition(prefix == 0 || (prefix > 0 && !lengths.isEmpty && prefix <= lengths[0]), "prefix longer than sequence 0")
        self.heads = heads; self.kvHeads = kvHeads; self.headDim = headDim
        self.lengths = lengths
        self.prefix = prefix
        var starts: [Int] = [], row = 0
        for length in lengths { starts.append(row); row += length }
        self.starts = starts
        self.seqLen = AttentionShape.mostKeys(lengths: lengths, prefix: prefix)
    }

    /// The most keys any sequence attends to: its own rows, and the prefix's
    /// for a sequence after the first.
    static func mostKeys(lengths: [Int], prefix: Int) -> Int {
        lengths.enumerated().map { b, length in b == 0 ? length : prefix + length }.max() ?? 0
    }

    /// B sequences of T rows each.
    public init(batch: Int, seqLen: Int, heads: Int, kvHeads: Int, headDim: Int) {
        self.init(lengths: Array(repeating: seqLen, count: batch), heads: heads, kvHeads: kvHeads, headDim: headDim)
    }

    public var batch: Int { lengths.count }
    /// Rows of sequence 0 that sequence b attends to before its own.
    func prefix(of b: Int) -> Int { b == 0 ? 0 : prefix }
    /// Floats of the prefix's key and value gradients that backward gathers
    /// from the later sequences: `prefixScratch`'s size.
    public var prefixScratchCount: Int { prefix == 0 ? 0 : 2 * (batch - 1) * prefix * kvWidth }
    var qWidth: Int { heads * headDim }
    var kvWidth: Int { kvHeads * headDim }
    var group: Int { heads / kvHeads }
    var scale: Float { 1 / Float(headDim).squareRoot() }
}

/// - out: (N, H·hd), N = Σ lengths; probs: (B, H, T, T) saved for backward,
///   sequence b's L × (P + L) scores (row stride P + L, P its prefix: the
///   prefix's keys first) at the start of its slot, zero past the diagonal;
/// - q: (N, H·hd); k, v: (N, KV·hd). Query head h reads key/value head h / (H/KV).
/// Each sequence attends only within itself (and to the shared prefix). A
/// right-padded sequence needs no mask either: a causal row never sees later
/// (padded) positions.
public func attentionForward(
    _ out: FloatPointer, probs: FloatPointer, q: FloatPointer, k: FloatPointer, v: FloatPointer,
    shape s: AttentionShape, context: ComputeContext
) {
    let T = s.seqLen, hd = s.headDim
    context.withSingleThreadedBLAS {
        context.parallelFor(s.batch * s.heads) { units in
            for unit in units {
                let b = unit / s.heads, h = unit % s.heads, kvh = h / s.group
                let L = s.lengths[b], row = s.starts[b], P = s.prefix(of: b), W = P + L
                guard L > 0 else { continue }
                let qh = q.base + row * s.qWidth + h * hd
                let kh = k.base + row * s.kvWidth + kvh * hd
                let vh = v.base + row * s.kvWidth + kvh * hd
                let outh = out.base + row * s.qWidth + h * hd
                let p = probs.base + unit * T * T
                if P > 0 {  // the prefix's keys, rows 0..<P, are the first P columns
                    gemm(transA: false, transB: true, m: L, n: P, k: hd, alpha: s.scale,
                         a: qh, lda: s.qWidth, b: k.base + kvh * hd, ldb: s.kvWidth, beta: 0, c: p, ldc: W)
                }
                gemm(transA: false, transB: true, m: L, n: L, k: hd, alpha: s.scale,
                     a: qh, lda: s.qWidth, b: kh, ldb: s.kvWidth, beta: 0, c: p + P, ldc: W)
                causalSoftmaxRows(p, rows: L, width: W)
                if P > 0 {
                    gemm(transA: false, transB: false, m: L, n: hd, k: P,
                         a: p, lda: W, b: v.base + kvh * hd, ldb: s.kvWidth, beta: 0, c: outh, ldc: s.qWidth)
                }
                gemm(transA: false, transB: false, m: L, n: hd, k: L,
                     a: p + P, lda: W, b: vh, ldb: s.kvWidth, beta: P > 0 ? 1 : 0, c: outh, ldc: s.qWidth)
            }
        }
    }
}

/// Row i of the (rows, width) scores, whose last `rows` columns are the
/// rows' own positions, keeps columns 0...(width − rows + i), softmaxed; the
/// rest become 0.
@inline(__always)
func causalSoftmaxRows(_ p: UnsafeMutablePointer<Float>, rows: Int, width: Int) {
    let seen = width - rows
    for i in 0..<rows {
        let row = p + i * width
        softmaxInPlace(row, count: seen + i + 1)
        for j in (seen + i + 1)..<width { row[j] = 0 }
    }
}

/// row[0..<count] replaced by its softmax (max subtracted first; CKernels'
/// softmax.c, its exponentials vectorised).
@inline(__always)
func softmaxInPlace(_ row: UnsafeMutablePointer<Float>, count: Int) {
    factsweep_softmax_row(row, count)
}

/// `body` with one bf16 rounding each of a (sequence, kv head)'s keys and
/// values and of the shared prefix's (`sharingBFloat16Copy`; no prefix, no
/// scope), for the query heads of the group that all read them.
@inline(__always)
private func sharingKeysAndValues(
    own: (UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>), prefix: (UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>),
    rows: (own: Int, prefix: Int), shape s: AttentionShape, _ body: () -> Void
) {
    let hd = s.headDim, ld = s.kvWidth
    sharingBFloat16Copy(of: FloatPointer(own.0), rows: rows.own, columns: hd, ld: ld) {
        sharingBFloat16Copy(of: FloatPointer(own.1), rows: rows.own, columns: hd, ld: ld) {
            sharingBFloat16Copy(of: FloatPointer(prefix.0), rows: rows.prefix, columns: hd, ld: ld) {
                sharingBFloat16Copy(of: FloatPointer(prefix.1), rows: rows.prefix, columns: hd, ld: ld, body)
            }
        }
    }
}

/// Backward of `attentionForward`.
/// - dq: (N, H·hd) overwritten; dk, dv: (N, KV·hd) overwritten;
/// - dout: (N, H·hd); scratch: threads × T × T;
/// - prefixScratch: `shape.prefixScratchCount` floats (none without a prefix).
/// Work is split by (sequence, kv head) so that the query heads sharing a
/// key/value head accumulate into it without racing. What a later sequence
/// sends to the shared prefix's keys and values goes to its own slice of
/// `prefixScratch`, added to the prefix's rows once every sequence is done.
public func attentionBackward(
    dq: FloatPointer, dk: FloatPointer, dv: FloatPointer, dout: FloatPointer,
    probs: FloatPointer, q: FloatPointer, k: FloatPointer, v: FloatPointer,
    shape s: AttentionShape, scratch: FloatPointer, prefixScratch: FloatPointer? = nil, context: ComputeContext
) {
    let T = s.seqLen, hd = s.headDim, prefixSlice = s.prefix * s.kvWidth
    precondition(s.prefixScratchCount == 0 || prefixScratch != nil, "a shared prefix needs prefixScratch")
    context.withSingleThreadedBLAS {
        context.parallelChunks(s.batch * s.kvHeads) { chunk, units in
            let dp = scratch.base + chunk * T * T
            for unit in units {
                let b = unit / s.kvHeads, kvh = unit % s.kvHeads
                let L = s.lengths[b], row = s.starts[b], P = s.prefix(of: b), W = P + L
                guard L > 0 else { continue }
                let kh = k.base + row * s.kvWidth + kvh * hd, vh = v.base + row * s.kvWidth + kvh * hd
                let dkh = dk.base + row * s.kvWidth + kvh * hd, dvh = dv.base + row * s.kvWidth + kvh * hd
                // The prefix's keys and values (rows 0..<P) and this sequence's share of their gradients.
                let kp = k.base + kvh * hd, vp = v.base + kvh * hd
                let dkp = (prefixScratch?.base ?? dk.base) + 2 * max(0, b - 1) * prefixSlice + kvh * hd
                let dvp = dkp + prefixSlice
                // In bf16 each operand read twice (K and V by every query head of the group, dO and dS's own columns by two products
                // each) is rounded once; the prefix's columns of P and dS, sub-blocks, are rounded by each product that reads them.
                sharingKeysAndValues(own: (kh, vh), prefix: (kp, vp), rows: (L, P), shape: s) {
                    for g in 0..<s.group {
                        let h = kvh * s.group + g
                        let first: Float = g == 0 ? 0 : 1
                        let qh = q.base + row * s.qWidth + h * hd
                        let doh = dout.base + row * s.qWidth + h * hd
                        let dqh = dq.base + row * s.qWidth + h * hd
                        let p = probs.base + (b * s.heads + h) * T * T
                        // dP = dO·Vᵀ; dV += Pᵀ·dO (the prefix's columns first)
                        sharingBFloat16Copy(of: FloatPointer(doh), rows: L, columns: hd, ld: s.qWidth) {
                            if P > 0 {
                                gemm(transA: false, transB: true, m: L, n: P, k: hd,
                                     a: doh, lda: s.qWidth, b: vp, ldb: s.kvWidth, beta: 0, c: dp, ldc: W)
                                gemm(transA: true, transB: false, m: P, n: hd, k: L,
                                     a: p, lda: W, b: doh, ldb: s.qWidth, beta: first, c: dvp, ldc: s.kvWidth)
                            }
                            gemm(transA: false, transB: true, m: L, n: L, k: hd,
                                 a: doh, lda: s.qWidth, b: vh, ldb: s.kvWidth, beta: 0, c: dp + P, ldc: W)
                            gemm(transA: true, transB: false, m: L, n: hd, k: L,
                                 a: p + P, lda: W, b: doh, ldb: s.qWidth, beta: first, c: dvh, ldc: s.kvWidth)
                        }
                        // dS = P ⊙ (dP − rowsum(P ⊙ dP)), zero past the diagonal.
                        for i in 0..<L {
                            let pr = p + i * W, dr = dp + i * W, seen = P + i + 1
                            var dot: Float = 0
                            for j in 0..<seen { dot += pr[j] * dr[j] }
                            for j in 0..<seen { dr[j] = pr[j] * (dr[j] - dot) }
                            for j in seen..<W { dr[j] = 0 }
                        }
                        // dQ = scale·dS·K; dK += scale·dSᵀ·Q
                        if P > 0 {
                            gemm(transA: false, transB: false, m: L, n: hd, k: P, alpha: s.scale,
                                 a: dp, lda: W, b: kp, ldb: s.kvWidth, beta: 0, c: dqh, ldc: s.qWidth)
                            gemm(transA: true, transB: false, m: P, n: hd, k: L, alpha: s.scale,
                                 a: dp, lda: W, b: qh, ldb: s.qWidth, beta: first, c: dkp, ldc: s.kvWidth)
                        }
                        sharingBFloat16Copy(of: FloatPointer(dp + P), rows: L, columns: L, ld: W) {
                            gemm(transA: false, transB: false, m: L, n: hd, k: L, alpha: s.scale,
                                 a: dp + P, lda: W, b: kh, ldb: s.kvWidth, beta: P > 0 ? 1 : 0, c: dqh, ldc: s.qWidth)
                            gemm(transA: true, transB: false, m: L, n: hd, k: L, alpha: s.scale,
                                 a: dp + P, lda: W, b: qh, ldb: s.qWidth, beta: first, c: dkh, ldc: s.kvWidth)
                        }
                    }
                }
            }
        }
    }
    // The later sequences' shares of the prefix's key and value gradients,
    // added in sequence order once sequence 0 has written its own.
    guard let gathered = prefixScratch?.base, s.prefixScratchCount > 0 else { return }
    for b in 1..<s.batch where s.lengths[b] > 0 {
        let slice = gathered + 2 * (b - 1) * prefixSlice
        for i in 0..<prefixSlice {
            dk.base[i] += slice[i]
            dv.base[i] += slice[prefixSlice + i]
        }
    }
}
