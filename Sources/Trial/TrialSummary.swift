// TrialSummary: the final figures of a trial — what `factsweep train` prints
// last, what the worker sends in `done` and what the store keeps in
// `trials.summary`. Its JSON keys are snake_case, as the summary has always
// been printed and stored, so databases written before this type existed read.
import Foundation

/// How a trial's run ended, as the trainer saw it.
public enum TrialOutcome: String, Sendable, Codable, CaseIterable {
    /// Every planned epoch ran.
    case done
    /// The loss became non-finite; retrying would diverge again.
    case diverged
    /// Stopped on request (Ctrl-C, SIGTERM, cancel) after checkpointing.
    case stopped
}

/// The final figures of a trial.
public struct TrialSummary: Sendable, Codable, Equatable {
    public var outcome: TrialOutcome
    /// The last epoch run.
    public var epochs: Int
    /// The last epoch's loss; nil when no epoch ran, non-finite when diverged.
    public var finalLoss: Float?
    public var trainableParameters: Int
    /// Bytes of the frozen base weights (NF4 for QLoRA).
    public var baseWeightBytes: Int?
    /// The process's peak resident set (shared by every trial it ran).
    public var peakResidentBytes: Int
    public var finalAccuracy: Float?
    public var finalAccuracyAtThreshold: Float?
    /// The first evaluated epoch whose accuracy reached the threshold.
    public var epochsToThreshold: Int?
    public var perplexityBefore: Float?
    public var finalPerplexity: Float?
    /// Training time per epoch, evaluation excluded.
    public var secondsPerEpoch: Double
    public var evaluationSeconds: Double
    /// The model trained, as the worker loaded it; nil for simulated trials
    /// and in summaries written before it was sent.
    public var model: ModelDescription?
    /// What its products ran on (`MatmulEngine.productsName`: "onednn",
    /// "openblas", "openblas+f32-kernels" for bf16 without bf16 kernels),
    /// comma-separated in order for a run resumed on another; nil for
    /// simulated trials and in summaries written before it was sent.
    public var engine: String?

    public init(outcome: TrialOutcome, epochs: Int, finalLoss: Float?, trainableParameters: Int, baseWeightBytes: Int?,
                peakResidentBytes: Int, finalAccuracy: Float? = nil, finalAccuracyAtThreshold: Float? = nil,
                epochsToThreshold: Int? = nil, perplexityBefore: Float? = nil, finalPerplexity: Float? = nil,
                secondsPerEpoch: Double, evaluationSeconds: Double, model: ModelDescription? = nil, engine: String? = nil) {
        self.outcome = outcome; self.epochs = epochs; self.finalLoss = finalLoss
        self.trainableParameters = trainableParameters; self.baseWeightBytes = baseWeightBytes
        self.peakResidentBytes = peakResidentBytes; self.finalAccuracy = finalAccuracy
        self.finalAccuracyAtThreshold = finalAccuracyAtThreshold; self.epochsToThreshold = epochsToThreshold
        self.perplexityBefore = perplexityBefore; self.finalPerplexity = finalPerplexity
        self.secondsPerEpoch = secondsPerEpoch; self.evaluationSeconds = evaluationSeconds; self.model = model
        self.engine = engine
    }

    enum CodingKeys: String, CodingKey {
        case outcome, epochs, finalLoss = "final_loss", trainableParameters = "trainable_params"
        case baseWeightBytes = "base_weight_bytes", peakResidentBytes = "peak_rss_bytes"
        case finalAccuracy = "final_accuracy", finalAccuracyAtThreshold = "final_accuracy_at_threshold"
        case epochsToThreshold = "epochs_to_threshold", perplexityBefore = "perplexity_before"
        case finalPerplexity = "final_perplexity", secondsPerEpoch = "seconds_per_epoch"
        case evaluationSeconds = "evaluation_seconds", model, engine
    }

    /// Protocol version 1 (and run databases it wrote) said `"diverged": true|false` instead of an outcome.
    private enum VersionOneKeys: String, CodingKey { case diverged }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        if let outcome = try c.decodeIfPresent(TrialOutcome.self, forKey: .outcome) {
            self.outcome = outcome
        } else {
            let old = try decoder.container(keyedBy: VersionOneKeys.self)
            outcome = try old.decodeIfPresent(Bool.self, forKey: .diverged) == true ? .diverged : .done
        }
        epochs = try c.decode(Int.self, forKey: .epochs)
        finalLoss = try c.decodeIfPresent(Float.self, forKey: .finalLoss)
        trainableParameters = try c.decode(Int.self, forKey: .trainableParameters)
        baseWeightBytes = try c.decodeIfPresent(Int.self, forKey: .baseWeightBytes)
        peakResidentBytes = try c.decode(Int.self, forKey: .peakResidentBytes)
        finalAccuracy = try c.decodeIfPresent(Float.self, forKey: .finalAccuracy)
        finalAccuracyAtThreshold = try c.decodeIfPresent(Float.self, forKey: .finalAccuracyAtThreshold)
        epochsToThreshold = try c.decodeIfPresent(Int.self, forKey: .epochsToThreshold)
        perplexityBefore = try c.decodeIfPresent(Float.self, forKey: .perplexityBefore)
        finalPerplexity = try c.decodeIfPresent(Float.self, forKey: .finalPerplexity)
        secondsPerEpoch = try c.decode(Double.self, forKey: .secondsPerEpoch)
        evaluationSeconds = try c.decode(Double.self, forKey: .evaluationSeconds)
        model = try c.decodeIfPresent(ModelDescription.self, forKey: .model)
        engine = try c.decodeIfPresent(String.self, forKey: .engine)
    }
}
