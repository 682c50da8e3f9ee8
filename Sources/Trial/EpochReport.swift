// EpochReport: what one epoch of a trial measured, as `factsweep train` prints
// it, the worker sends it in `progress`, checkpoints keep it and the store
// records it.
import Foundation

/// Measurements of one epoch.
public struct EpochReport: Sendable, Codable, Equatable {
    public var epoch: Int
    /// Mean of the epoch's step losses.
    public var loss: Float
    public var epochSeconds: Double
    /// Training time so far, evaluation excluded.
    public var trainSeconds: Double
    /// Tokens fed through the model this epoch (padding excluded).
    public var tokens: Int
    /// Matrix-product FLOPs executed this epoch (forward and backward).
    public var flops: Double
    /// Set at evaluation epochs.
    public var evaluation: EvaluationReport?

    public init(epoch: Int, loss: Float, epochSeconds: Double, trainSeconds: Double, tokens: Int = 0, flops: Double = 0,
                evaluation: EvaluationReport? = nil) {
        self.epoch = epoch; self.loss = loss; self.epochSeconds = epochSeconds; self.trainSeconds = trainSeconds
        self.tokens = tokens; self.flops = flops; self.evaluation = evaluation
    }
}
