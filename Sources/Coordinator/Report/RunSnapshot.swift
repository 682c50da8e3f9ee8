// RunSnapshot: what a report reads from a run database — trials, every epoch
// row and the answers of each trial's last evaluation — taken in one read so
// that a running sweep gives a consistent picture.
import Foundation

/// A trial as the report sees it: its settings, progress and (once
/// finished) the worker's summary.
public struct ReportTrial: Sendable, Equatable {
    public var key: String
    public var condition: String
    /// `full`, `lora`, `qlora` or `ia3`.
    public var method: String
    /// LoRA rank and alpha; nil for methods without them.
    public var rank: Int?
    public var alpha: Double?
    public var learningRate: Double
    public var seed: Int64
    /// Epochs the trial is planned to train.
    public var plannedEpochs: Int
    /// The trial's status as stored (`pending`, `running`, `done`, …).
    public var status: String
    public var lastEpoch: Int
    /// The worker's final summary; nil until the trial is done (or in
    /// databases written before the summary was stored).
    public var summary: TrialSummaryFacts?
    /// The model path of the trial's configuration.
    public var model: String = ""

    /// Whether more epochs may still arrive (the curve is partial).
    public var isOpen: Bool { ["pending", "running", "stale"].contains(status) }
}

/// The parts of the worker's final summary a report shows; every field is
/// optional so that older or partial summaries still read.
public struct TrialSummaryFacts: Sendable, Equatable, Decodable {
    public var trainableParameters: Int?
    public var baseWeightBytes: Int?
    public var peakResidentBytes: Int?
    public var perplexityBefore: Double?
    public var finalPerplexity: Double?
    public var secondsPerEpoch: Double?
    /// The model as the worker loaded it (absent from older summaries): its own
    /// name, its file, how the file stores the weights and what training used, its size.
    public var modelName: String?
    public var modelFile: String?
    public var modelWeights: String?
    public var modelParameters: Int?

    public init(trainableParameters: Int? = nil, baseWeightBytes: Int? = nil, peakResidentBytes: Int? = nil,
                perplexityBefore: Double? = nil, finalPerplexity: Double? = nil, secondsPerEpoch: Double? = nil,
                modelName: String? = nil, modelFile: String? = nil, modelWeights: String? = nil, modelParameters: Int? = nil) {
        self.trainableParameters = trainableParameters; self.baseWeightBytes = baseWeightBytes
        self.peakResidentBytes = peakResidentBytes; self.perplexityBefore = perplexityBefore
        self.finalPerplexity = finalPerplexity; self.secondsPerEpoch = secondsPerEpoch
        self.modelName = modelName; self.modelFile = modelFile; self.modelWeights = modelWeights
        self.modelParameters = modelParameters
    }

    /// The protocol's `done` summary keys (docs/protocol.md).
    enum CodingKeys: String, CodingKey {
        case trainableParameters = "trainable_params", baseWeightBytes = "base_weight_bytes"
        case peakResidentBytes = "peak_rss_bytes", perplexityBefore = "perplexity_before"
        case finalPerplexity = "final_perplexity", secondsPerEpoch = "seconds_per_epoch"
        case modelName = "model_name", modelFile = "model_file", modelWeights = "model_weights"
        case modelParameters = "model_parameters"
    }
}

/// One `epoch_metrics` row. Evaluation columns are nil at epochs without an evaluation.
public struct ReportEpoch: Sendable, Equatable {
    public var trialKey: String
    public var epoch: Int
    /// nil when the loss was not a number (diverged).
    public var loss: Double?
    /// Training time of the trial so far, evaluation excluded.
    public var trainSeconds: Double
    public var epochSeconds: Double
    public var accuracy: Double?
    public var accuracyAtThreshold: Double?
    public var keyMatch: Double?
    public var perplexity: Double?
}

/// One answer of an evaluation (a `question_outputs` row).
public struct ReportAnswer: Sendable, Equatable {
    public var trialKey: String
    public var epoch: Int
    public var question: String
    public var paraphrase: Bool
    public var reference: String
    public var answer: String
    public var similarity: Double
}

/// Everything a report is made from, read in one transaction.
public struct RunSnapshot: Sendable, Equatable {
    /// The database file, as the user named it.
    public var path: String
    public var sweepNames: [String]
    /// In the order they were added, so conditions keep the spec's order.
    public var trials: [ReportTrial]
    /// Ordered by trial, then epoch.
    public var epochs: [ReportEpoch]
    /// The answers of every trial's last evaluated epoch.
    public var lastAnswers: [ReportAnswer]
    /// Whether the database stores trial summaries (migration v2-trial-summary).
    public var storesSummaries: Bool
}
