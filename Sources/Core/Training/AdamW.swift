// AdamW with bias correction and decoupled weight decay (torch.optim.AdamW),
// gradient-norm clipping (torch.nn.utils.clip_grad_norm_), fused with zeroing
// the gradients so that a step streams each array through memory once.
import Foundation
import Trial

/// The moments of AdamW over one flat parameter arena, in an arena of their own.
public final class AdamW: @unchecked Sendable {
    public let settings: AdamWSettings
    public let count: Int
    /// First and second moments, (count) each, one arena.
    public let moments: FloatArena
    public private(set) var step: Int = 0

    public init(count: Int, settings: AdamWSettings) {
        self.settings = settings
        self.count = count
        moments = FloatArena(capacity: 2 * count)
    }

    var m: FloatPointer { FloatPointer(moments.base) }
    var v: FloatPointer { FloatPointer(moments.base + count) }

    /// Restores the step counter (moments are restored through `moments`).
    public func restore(step: Int) { self.step = step }

    /// One update of `params` from `grads` at learning rate `lr`, then zeroes
    /// `grads`. Clips by the global norm first when configured; returns the
    /// norm before clipping. `squaredNorm`, when the caller already has it
    /// (backward sums each layer's gradients while they are still in cache),
    /// saves a pass over all gradients.
    @discardableResult
    public func update(params: FloatPointer, grads: FloatPointer, lr: Float, squaredNorm: Double? = nil, context: ComputeContext) -> Float {
        let norm = Float((squaredNorm ?? sumOfSquares(grads, count: count, context: context)).squareRoot())
        var clip: Float = 1
        if let maxNorm = settings.maxGradNorm {
            clip = min(1, maxNorm / (norm + 1e-6))
        }
        step += 1
        let s = settings
        let bias1 = 1 - pow(s.beta1, Float(step))
        let bias2Sqrt = (1 - pow(s.beta2, Float(step))).squareRoot()
        let stepSize = lr / bias1
        let decay = 1 - lr * s.weightDecay
        let m = self.m, v = self.v
        context.parallelFor(count / 16, minimumPerThread: 4096) { range in
            // 16 lanes at a time: the update is memory-bound, so it must stream.
            let b1 = SIMD16<Float>(repeating: s.beta1), b2 = SIMD16<Float>(repeating: s.beta2)
            let c1 = SIMD16<Float>(repeating: 1 - s.beta1), c2 = SIMD16<Float>(repeating: 1 - s.beta2)
            let eps = SIMD16<Float>(repeating: s.eps)
            for block in range {
                let i = block * 16
                let g = load16(grads.base + i) * clip
                let mi = b1 * load16(m.base + i) + c1 * g
                let vi = b2 * load16(v.base + i) + c2 * g * g
                store16(mi, m.base + i)
                store16(vi, v.base + i)
                let p = load16(params.base + i) * decay - stepSize * mi / (vi.squareRoot() / bias2Sqrt + eps)
                store16(p, params.base + i)
                store16(.zero, grads.base + i)
            }
        }
        for i in (count / 16 * 16)..<count {
            let g = grads[i] * clip
            m[i] = s.beta1 * m[i] + (1 - s.beta1) * g
            v[i] = s.beta2 * v[i] + (1 - s.beta2) * g * g
            params[i] = params[i] * decay - stepSize * m[i] / (v[i].squareRoot() / bias2Sqrt + s.eps)
            grads[i] = 0
        }
        return norm
    }
}

