// Causal-LM cross-entropy over the rows that carry a label, and its gradient.
import CKernels
import Foundation

/// Softmax cross-entropy of `rows` logit rows against `targets`, averaged over rows.
/// - logits: (M, V), overwritten in backward-ready form: on return each row holds
///   (softmax − onehot(target)) · gradScale, i.e. ∂(gradScale·Σ loss)/∂logits.
/// - losses: (M) per-row loss, returned for reporting.
/// Returns the mean loss. Rows are independent, so they split across threads.
public func crossEntropyForwardBackward(
    logits: FloatPointer, losses: FloatPointer, targets: UnsafePointer<Int32>, rows: Int, vocab: Int,
    gradScale: Float, context: ComputeContext
) -> Float {
    context.parallelFor(rows) { range in
        for r in range {
            let t = Int(targets[r])
            precondition(t >= 0 && t < vocab, "target \(t) outside the vocabulary of \(vocab)")
            losses[r] = factsweep_cross_entropy_row(logits.base + r * vocab, vocab, t, gradScale)
        }
    }
    var total: Double = 0
    for r in 0..<rows { total += Double(losses[r]) }
    return rows > 0 ? Float(total / Double(rows)) : 0
}
