// AdamW with bias correction and decoupled weight decay (torch.optim.AdamW)
// and gradient-norm clipping (torch.nn.utils.clip_grad_norm_), one pass that
// streams each array through memory once. It only reads the gradients: the
// backward pass overwrites them every step, so nothing zeroes them. The
// moments are stored in f32 or, on request, in bf16 (half their memory). The
// element-wise update is C (Sources/CKernels/adamw.c), where the compiler
// vectorises the square root.
import CKernels
import Foundation
import Trial

/// The moments of AdamW over one flat parameter arena, in an arena of their own.
public final class AdamW: @unchecked Sendable {
    public let settings: AdamWSettings
    public let count: Int
    /// First and second moments, (count) each, one arena: Floats in f32;
    /// in bf16 their bits, two to a Float's room (`momentBits`).
    public let moments: FloatArena
    public private(set) var step: Int = 0

    public init(count: Int, settings: AdamWSettings) {
        self.settings = settings
        self.count = count
        moments = FloatArena(capacity: settings.momentPrecision == .bf16 ? count : 2 * count)
    }

    var m: FloatPointer { FloatPointer(moments.base) }
    var v: FloatPointer { FloatPointer(moments.base + count) }

    /// The bf16 moments' bits, first moments then second (2 × count); bf16 moments only.
    public var momentBits: UnsafeMutableBufferPointer<UInt16> {
        precondition(settings.momentPrecision == .bf16, "f32 moments have no bf16 bits")
        return UnsafeMutableBufferPointer(
            start: UnsafeMutableRawPointer(moments.base).assumingMemoryBound(to: UInt16.self), count: 2 * count)
    }

    /// Restores the step counter (moments are restored through `moments`).
    public func restore(step: Int) { self.step = step }

    /// One update of `params` from `grads` at learning rate `lr`; `grads` are
    /// read, not changed. Clips by the global norm first when configured;
    /// returns the norm before clipping when it is known: given as
    /// `squaredNorm` (backward sums each layer's gradients while they are
    /// still in cache, saving a pass over all gradients) or needed for
    /// clipping. Without clipping and
    /// without `squaredNorm`, nil: no pass is made for a figure nothing reads.
    @discardableResult
    public func update(params: FloatPointer, grads: FloatPointer, lr: Float, squaredNorm: Double? = nil, context: ComputeContext) -> Float? {
        update(params: params, grads: grads, lr: lr, squaredNorm: squaredNorm, rounded: [], context: context)
    }

    /// `update(params:grads:lr:squaredNorm:context:)` that also writes the
    /// bf16 rounding of the parameters in `rounded` (`RoundedSpan`).
    func update(params: FloatPointer, grads: FloatPointer, lr: Float, squaredNorm: Double?, rounded: [RoundedSpan],
                context: ComputeContext) -> Float? {
        var clip: Float = 1
        var norm = squaredNorm.map { Float($0.squareRoot()) }
        if let maxNorm = settings.maxGradNorm {
            let known = norm ?? Float(sumOfSquares(grads, count: count, context: context).squareRoot())
            clip = min(1, maxNorm / (known + 1e-6))
            norm = known
        }
        let step = beginStep(lr: lr, clip: clip)
        update(step, params: params, grads: grads, range: 0..<count, rounded: rounded, context: context)
        return norm
    }

    /// Counts a step and returns its constants (bias corrections at the new
    /// step count, learning rate, clip factor) for `update(_:params:grads:range:context:)`:
    /// a step's update may then run in pieces, each range once.
    func beginStep(lr: Float, clip: Float = 1) -> factsweep_adamw_step {
        step += 1
        let s = settings
        let bias1 = 1 - pow(s.beta1, Float(step))
        let bias2Sqrt = (1 - pow(s.beta2, Float(step))).squareRoot()
        return factsweep_adamw_step(clip: clip, beta1: s.beta1, beta2: s.beta2, eps: s.eps, step_size: lr / bias1,
                                    decay: 1 - lr * s.weightDecay, bias2_sqrt: bias2Sqrt)
    }

    /// Parameters `offset..<offset + count` of the arena whose updated values
    /// are also written, rounded to bf16, to `destination` (full
    /// fine-tuning's per-step rounding of a trained matrix,
    /// `BFloat16Matrix.init(rounding:)`).
    struct RoundedSpan: @unchecked Sendable {
        var offset: Int, count: Int
        var destination: Destination
        var end: Int { offset + count }

        enum Destination {
            /// Plain rows, element by element in the update's pass.
            case plain(UnsafeMutablePointer<UInt16>)
            /// oneDNN's blocked layouts of a rows × columns matrix, both
            /// directions (`factsweep_bf16_round_vnni`), 16 rows at a time
            /// right after the update has written them.
            case blocked(forward: UnsafeMutablePointer<UInt16>, backward: UnsafeMutablePointer<UInt16>, rows: Int, columns: Int)
        }

        /// Elements in one group of 16 rows of a blocked span; nil for a plain one.
        var groupCount: Int? {
            if case let .blocked(_, _, _, columns) = destination { 16 * columns } else { nil }
        }

        /// `b` moved to the end of its group of 16 rows when it falls inside
        /// a blocked span, so that every group is updated by one thread,
        /// which then rounds it; else `b`.
        func snapped(_ b: Int) -> Int {
            guard let group = groupCount, b > offset, b < end else { return b }
            return min(end, offset + (b - offset + group - 1) / group * group)
        }
    }

    /// The update of `step` over the elements `range` of the arena `params`
    /// points at (and of the moments), whose gradients start at `grads`
    /// (the gradient of element `range.lowerBound`; the whole gradient arena
    /// when the range starts at 0), which it reads and leaves as they are;
    /// the elements inside `rounded` (sorted by offset, not overlapping) also
    /// get their bf16 rounding written, in the same pass. Each element's
    /// arithmetic is the same however a step is split, so an update in pieces
    /// gives the bits of one over the whole arena. `range` may split a
    /// blocked span only between groups of 16 of its rows (each group is
    /// rounded by the thread that updated it, right after).
    func update(_ step: factsweep_adamw_step, params: FloatPointer, grads: FloatPointer, range: Range<Int>,
                rounded: [RoundedSpan] = [], context: ComputeContext) {
        precondition(range.lowerBound >= 0 && range.upperBound <= count, "update range outside the optimizer's parameters")
        precondition(!rounded.contains { $0.snapped(range.lowerBound) != range.lowerBound || $0.snapped(range.upperBound) != range.upperBound },
                     "an update range splits a group of 16 rows of a trained matrix whose rounding is blocked")
        // Each thread streams its own range (whole blocks of 16 but the last): the update is memory-bound.
        let first = range.lowerBound, n = range.count
        let bits = settings.momentPrecision == .bf16 ? momentBits.baseAddress : nil
        let m = self.m, v = self.v, total = count
        withUnsafePointer(to: step) { step in
            /// Elements lo..<hi, their rounding to `rounding` (its first element's) when given.
            func run(_ lo: Int, _ hi: Int, rounding: UnsafeMutablePointer<UInt16>?) {
                if let bits {
                    factsweep_adamw_bf16(step, params.base + lo, grads.base + (lo - first), bits + lo, bits + total + lo, rounding, hi - lo)
                } else {
                    factsweep_adamw_f32(step, params.base + lo, grads.base + (lo - first), m.base + lo, v.base + lo, rounding, hi - lo)
                }
            }
            context.parallelFor((n + 15) / 16, minimumPerThread: 4096) { blocks in
                var lo = first + blocks.lowerBound * 16, hi = first + min(n, blocks.upperBound * 16)
                // Threads meet at whole groups of a blocked span's rows (every thread moves a shared boundary alike).
                for span in rounded {
                    lo = span.snapped(lo)
                    hi = span.snapped(hi)
                }
                var at = lo
                for span in rounded where span.end > lo && span.offset < hi {
                    let start = max(span.offset, at), end = min(span.end, hi)
                    if start > at { run(at, start, rounding: nil) }
                    switch span.destination {
                    case let .plain(bits):
                        run(start, end, rounding: bits + (start - span.offset))
                    case let .blocked(forward, backward, rows, columns):
                        // Each group of 16 rows updated, then rounded into both layouts while in cache.
                        for group in stride(from: start, to: end, by: 16 * columns) {
                            run(group, group + 16 * columns, rounding: nil)
                            let row = (group - span.offset) / columns
                            roundIntoBlockedLayouts(params.base + span.offset, height: rows, width: columns, rows: row..<row + 16,
                                                    forward: forward, backward: backward)
                        }
                    }
                    at = end
                }
                if at < hi { run(at, hi, rounding: nil) }
            }
        }
    }
}
