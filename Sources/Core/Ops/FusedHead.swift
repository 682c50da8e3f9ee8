// FusedHead: the output head's cross-entropy and its input gradient for a
// frozen Float32 head, reading the head's weight once instead of twice.
import CKernels
import Foundation

/// The fused head's switch: `FACTSWEEP_FUSED_HEAD=off` for the benchmark's
/// before/after; tests turn it off per thread to compare with the two
/// products and the loss between them.
let fusedHead = PathSwitch(environmentKey: "FACTSWEEP_FUSED_HEAD")

/// Rows of W in a block: 1 MiB of Floats (128 rows at Llama-3.2-1B's
/// width, 448 at SmolLM2's), a Zen 4 core's L2, so that the block the
/// logits' product read from memory is still in cache (L2, or the shared
/// L3) for the gradient's product. Blocks of 2 and 4 MiB measured level
/// with it, 8 MiB slower (docs/benchmarks.md, "Issue 13, forty-sixth
/// stop"). A multiple of 16 (at least 16) unless a thread's share of the
/// vocabulary is smaller: then that share.
func fusedHeadBlockRows(width: Int, vocab: Int, chunks: Int) -> Int {
    min(max(16, (1 << 18) / max(1, width) / 16 * 16), (vocab + chunks - 1) / max(1, chunks))
}

/// `count` Floats rounded up to 64 bytes: each thread's scratch parts start
/// on a cache line of their own.
private func cacheLines(_ count: Int) -> Int { (count + 15) / 16 * 16 }

/// Floats of one thread's scratch: the block's logits (m, blockRows), a
/// partial sum (m, C), a running maximum and sum per row, each part
/// starting on a cache line.
private func fusedHeadChunkFloats(rows m: Int, blockRows: Int, width C: Int) -> Int {
    cacheLines(m * blockRows) + cacheLines(m * C) + cacheLines(2 * m)
}

/// Threads' shares of the vocabulary: one per thread, at most one per word.
func fusedHeadChunks(vocab: Int, threads: Int) -> Int { max(1, min(threads, vocab)) }

/// Floats of scratch `fusedHeadCrossEntropy` needs for `rows` labelled rows:
/// each thread's (`fusedHeadChunkFloats`), and one target logit per row.
func fusedHeadScratchFloats(rows m: Int, vocab: Int, width: Int, threads: Int) -> Int {
    let chunks = fusedHeadChunks(vocab: vocab, threads: threads)
    let blockRows = fusedHeadBlockRows(width: width, vocab: vocab, chunks: chunks)
    return chunks * fusedHeadChunkFloats(rows: m, blockRows: blockRows, width: width) + m
}

/// The softmax cross-entropy of the `m` rows of `inp` (m, C) through a
/// frozen head W (V, C) against `targets`, without the logits: each row's
/// loss into `losses`, gradScale · ∂(Σ loss)/∂inp into `dinp` (m, C);
/// returns the mean loss. The same values as `head.multiply`, then
/// `crossEntropyForwardBackward`, then `head.multiplyTransposed` (to within
/// the order of the sums: about 1e-6 relative).
///
/// Why: at batch 1 an example has ~23 labelled rows, and at so few rows
/// each of the two head products is bound by reading W: Llama-3.2-1B's tied
/// head is 1.05 GB of Floats, read twice a step at 7–11 GB/s, 97 ms forward
/// and 143 ms for the input gradient (docs/benchmarks.md, "Issue 13,
/// forty-fifth stop"). Here each thread runs its share of the vocabulary
/// in blocks of `fusedHeadBlockRows`: the block's logits (one product on
/// its own core), an online softmax over them (a running maximum and sum
/// per row; the partial sum rescaled when the maximum moves) and the
/// block's share of softmax · W (a second product, its block still in
/// cache). The threads' partial sums merge by their maxima; ∂loss/∂inp is
/// softmax · W minus the target's row of W.
///
/// `scratch` holds `fusedHeadScratchFloats` Floats; `dinp` is written whole.
func fusedHeadCrossEntropy(
    inp: UnsafePointer<Float>, weight w: UnsafePointer<Float>, vocab V: Int, width C: Int, targets: UnsafePointer<Int32>, rows m: Int,
    gradScale: Float, losses: UnsafeMutablePointer<Float>, dinp: UnsafeMutablePointer<Float>, scratch: UnsafeMutablePointer<Float>,
    context: ComputeContext
) -> Float {
    guard m > 0 else { return 0 }
    for r in 0..<m { precondition(targets[r] >= 0 && Int(targets[r]) < V, "target \(targets[r]) outside the vocabulary of \(V)") }
    let chunks = fusedHeadChunks(vocab: V, threads: context.threads), blockRows = fusedHeadBlockRows(width: C, vocab: V, chunks: chunks)
    // A chunk's scratch: its block's logits (m, blockRows), partial sum (m, C), maxima (m), sums (m). Chunk 0 sums into dinp.
    let stride = fusedHeadChunkFloats(rows: m, blockRows: blockRows, width: C)
    let targetLogits = scratch + chunks * stride
    func parts(_ chunk: Int) -> (block: UnsafeMutablePointer<Float>, partial: UnsafeMutablePointer<Float>,
                                 maxima: UnsafeMutablePointer<Float>, sums: UnsafeMutablePointer<Float>) {
        let base = scratch + chunk * stride, partial = base + cacheLines(m * blockRows), maxima = partial + cacheLines(m * C)
        return (base, chunk == 0 ? dinp : partial, maxima, maxima + m)
    }
    let shared = UncheckedSendable((inp: inp, w: w, targets: targets, targetLogits: targetLogits))
    context.withSingleThreadedBLAS {
        context.parallelChunks(chunks) { chunk, _ in
            let (inp, w, targets, targetLogits) = shared.value
            let (block, partial, maxima, sums) = parts(chunk)
            for r in 0..<m { maxima[r] = -.infinity; sums[r] = 0 }
            let v0 = V * chunk / chunks, v1 = V * (chunk + 1) / chunks
            // The profile times the last chunk's products.
            let profiled = chunk == chunks - 1
            var b0 = v0
            while b0 < v1 {
                let n = min(blockRows, v1 - b0)
                // The block's logits (m, n) = inp · W[b0..<b0+n]ᵀ, rows blockRows apart.
                gemmOnOneThread(transA: false, transB: true, m: m, n: n, k: C, a: inp, lda: C, b: w + b0 * C, ldb: C,
                                beta: 0, c: block, ldc: blockRows, profiled: profiled)
                for r in 0..<m {
                    let row = block + r * blockRows, t = Int(targets[r]) - b0
                    if t >= 0, t < n { targetLogits[r] = row[t] }
                    // row ← exp(row − running maximum); what was summed against an older maximum is rescaled.
                    let scale = factsweep_online_softmax_block(row, n, maxima + r, sums + r)
                    if b0 != v0, scale != 1 {
                        let sum = partial + r * C
                        for i in 0..<C { sum[i] *= scale }
                    }
                }
                // partial (m, C) (+)= exp(logits − maximum) · W[b0..<b0+n], the block still in cache.
                gemmOnOneThread(transA: false, transB: false, m: m, n: C, k: n, a: block, lda: blockRows, b: w + b0 * C, ldb: C,
                                beta: b0 == v0 ? 0 : 1, c: partial, ldc: C, profiled: profiled)
                b0 += n
            }
        }
    }
    // Merge: with M the largest maximum, S = Σ sums·e^(max−M) and the softmax
    // · W = Σ partial·e^(max−M) / S; the loss is M + log S − the target's logit.
    context.parallelFor(m) { range in
        let (_, w, targets, targetLogits) = shared.value
        for r in range {
            var top = -Float.infinity
            for chunk in 0..<chunks { top = max(top, parts(chunk).maxima[r]) }
            var total: Float = 0
            for chunk in 0..<chunks { total += parts(chunk).sums[r] * expf(parts(chunk).maxima[r] - top) }
            losses[r] = top + logf(total) - targetLogits[r]
            let out = dinp + r * C
            let first = gradScale * expf(parts(0).maxima[r] - top) / total
            for i in 0..<C { out[i] *= first }
            for chunk in 1..<chunks {
                let factor = gradScale * expf(parts(chunk).maxima[r] - top) / total, partial = parts(chunk).partial + r * C
                for i in 0..<C { out[i] += factor * partial[i] }
            }
            let target = w + Int(targets[r]) * C
            for i in 0..<C { out[i] -= gradScale * target[i] }
        }
    }
    var total: Double = 0
    for r in 0..<m { total += Double(losses[r]) }
    return Float(total / Double(m))
}
