// TrialConfig: the fully resolved configuration of one trial — everything that
// decides its result — as the sweep stores it, sends it to workers and keys it.
import Foundation

/// One trial, resolved: no defaults left to fill in at run time.
public struct TrialConfig: Codable, Sendable, Equatable {
    /// A GGUF file or Hugging Face directory, as the user wrote it.
    public var model: String
    /// Facts as JSON Lines.
    public var data: String
    public var training: TrainingSettings
    /// Evaluate every K epochs (and after the last); 0: never.
    public var evalEvery: Int
    public var threshold: Float
    /// nil: twice the longest reference answer plus 8 tokens.
    public var maxNewTokens: Int?
    /// The sentence embedder directory; nil: the embedded default.
    public var embedder: String?
    /// Held-out text for perplexity; nil: the shipped data/heldout.txt; "none": skip.
    public var heldOut: String?
    /// Checkpoint every C epochs (and at the end).
    public var checkpointEvery: Int
    /// Epochs evaluated besides `evalEvery`'s, ascending, without repeats; 0 is
    /// the base model, before training. nil (and so absent from the canonical
    /// JSON, keeping the keys of trials planned before it existed): none.
    public var evalEpochs: [Int]?

    public init(model: String, data: String, training: TrainingSettings, evalEvery: Int = 1, threshold: Float = 0.9,
                maxNewTokens: Int? = nil, embedder: String? = nil, heldOut: String? = nil, checkpointEvery: Int = 10,
                evalEpochs: [Int]? = nil) {
        self.model = model; self.data = data; self.training = training; self.evalEvery = evalEvery
        self.threshold = threshold; self.maxNewTokens = maxNewTokens; self.embedder = embedder
        self.heldOut = heldOut; self.checkpointEvery = checkpointEvery; self.evalEpochs = evalEpochs
    }

    /// Whether epoch `epoch` (0: the base model) is evaluated: `evalEpochs`
    /// lists it, or `evalEvery` divides it, or it is the last and `evalEvery` is on.
    public func evaluates(epoch: Int) -> Bool {
        if evalEpochs?.contains(epoch) == true { return true }
        return epoch > 0 && evalEvery > 0 && (epoch % evalEvery == 0 || epoch == training.epochs)
    }

    /// Whether any epoch is evaluated, and so an evaluator is needed.
    public var evaluatesAny: Bool { evalEvery > 0 || !(evalEpochs ?? []).isEmpty }

    /// JSON with sorted keys: equal configurations give equal bytes.
    public func canonicalJSON() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return try encoder.encode(self)
    }
}
