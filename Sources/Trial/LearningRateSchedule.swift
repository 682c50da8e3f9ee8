// LearningRateSchedule: the learning rate as a function of the optimizer step.
import Foundation

/// Constant, or linear warm-up followed by constant or cosine decay.
public struct LearningRateSchedule: Sendable, Codable, Equatable {
    public enum Decay: String, Sendable, Codable, CaseIterable { case constant, cosine, linear }

    public var peak: Float
    public var warmupSteps: Int
    public var decay: Decay
    /// Steps over which decay runs (cosine/linear reach `minimum` at this step).
    public var totalSteps: Int
    public var minimum: Float

    public init(peak: Float, warmupSteps: Int = 0, decay: Decay = .constant, totalSteps: Int = 0, minimum: Float = 0) {
        self.peak = peak; self.warmupSteps = warmupSteps; self.decay = decay; self.totalSteps = totalSteps; self.minimum = minimum
    }

    /// The rate for step `step` (0-based: the first update uses step 0).
    public func rate(at step: Int) -> Float {
        if step < warmupSteps { return peak * Float(step + 1) / Float(warmupSteps) }
        let span = totalSteps - warmupSteps
        guard decay != .constant, span > 0 else { return peak }
        let progress = min(1, Float(step - warmupSteps) / Float(span))
        switch decay {
        case .constant: return peak
        case .linear: return minimum + (peak - minimum) * (1 - progress)
        case .cosine: return minimum + (peak - minimum) * 0.5 * (1 + cos(Float.pi * progress))
        }
    }
}
