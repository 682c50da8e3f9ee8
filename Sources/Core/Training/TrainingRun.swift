// TrainingRun: one trial of fine-tuning on a fact dataset, epoch by epoch,
// reporting through a callback (which the CLI prints and the sweep worker
// turns into protocol messages).
import Foundation

/// How a trial trains. Fields are documented defaults; a sweep overrides them.
public struct TrainingSettings: Sendable, Codable, Equatable {
    public var method = MethodSettings(kind: .full)
    /// Peak learning rate.
    public var learningRate: Float = 5e-5
    public var epochs: Int = 10
    /// Examples per optimizer step; 0 means all examples in one batch.
    public var batchSize: Int = 1
    /// Seeds example order (shuffled every epoch) and any random initialisation.
    public var seed: UInt64 = 0
    public var warmupSteps: Int = 0
    public var decay: LearningRateSchedule.Decay = .constant
    public var lossScope: LossScope = .answer
    public var optimizer = AdamWSettings()

    public init() {}
}

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
}

/// What the callback tells the run after each epoch.
public enum TrainingProgress: Sendable { case more, stop }

/// A fine-tuning trial over tokenised examples.
public final class TrainingRun: @unchecked Sendable {
    public let settings: TrainingSettings
    public let examples: [TrainingExample]
    public let trainer: FineTuning
    private let padToken: Int32
    private var rng: SeededGenerator
    public private(set) var completedEpochs = 0
    private var trainSeconds: Double = 0
    private var steps = 0

    public init(model: LanguageModel, dataset: FactDataset, settings: TrainingSettings, context: ComputeContext) throws {
        self.settings = settings
        examples = try dataset.facts.map { try TrainingExample(fact: $0, model: model) }
        padToken = model.tokenizer.eosTokenId ?? 0
        rng = SeededGenerator(seed: settings.seed)
        let batch = settings.batchSize == 0 ? examples.count : min(settings.batchSize, examples.count)
        let maxSeq = examples.map { $0.tokens.count - 1 }.max() ?? 1
        trainer = try FineTuning(base: model.model, method: settings.method, optimizer: settings.optimizer, maxBatch: batch, maxSeq: maxSeq,
                                 seed: settings.seed, context: context)
    }

    var stepsPerEpoch: Int {
        let b = settings.batchSize == 0 ? examples.count : settings.batchSize
        return (examples.count + b - 1) / b
    }

    var schedule: LearningRateSchedule {
        LearningRateSchedule(peak: settings.learningRate, warmupSteps: settings.warmupSteps, decay: settings.decay,
                             totalSteps: settings.epochs * stepsPerEpoch)
    }

    /// Trains one epoch: examples shuffled, batched, one optimizer step per batch.
    public func runEpoch() -> EpochReport {
        let order = Array(examples.indices).shuffled(using: &rng)
        let b = settings.batchSize == 0 ? examples.count : settings.batchSize
        let batches = stride(from: 0, to: order.count, by: b).map { start in
            TokenBatch(examples: order[start..<min(order.count, start + b)].map { examples[$0] }, padToken: padToken, scope: settings.lossScope)
        }
        let tokens = examples.reduce(0) { $0 + $1.tokens.count - 1 }
        var lossSum: Float = 0, flops: Double = 0
        let start = DispatchTime.now().uptimeNanoseconds
        for batch in batches {
            let result = trainer.step(batch, lr: schedule.rate(at: steps))
            steps += 1
            lossSum += result.loss
            flops += trainer.base.trainingFlops(batch)
        }
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9
        trainSeconds += seconds
        completedEpochs += 1
        return EpochReport(epoch: completedEpochs, loss: lossSum / Float(batches.count), epochSeconds: seconds,
                           trainSeconds: trainSeconds, tokens: tokens, flops: flops)
    }

    /// Runs the remaining epochs, reporting each; stops early when asked.
    public func run(_ progress: (EpochReport) -> TrainingProgress) {
        while completedEpochs < settings.epochs {
            if progress(runEpoch()) == .stop { return }
        }
    }
}

extension LlamaModel {
    /// FLOPs of the matrix products of one full fine-tuning step on `batch`:
    /// forward, plus backward's input and weight gradients (twice forward).
    public func trainingFlops(_ batch: TokenBatch) -> Double {
        let c = config, n = Double(batch.batchSize * batch.seqLen), m = Double(batch.labelledCount)
        let C = Double(c.hiddenSize), F = Double(c.intermediateSize)
        let linear = C * Double(c.queryWidth) * 2 + C * Double(c.kvWidth) * 2 + 3 * C * F
        let T = Double(batch.seqLen)
        let attention = 4 * Double(batch.batchSize * c.headCount) * T * T * Double(c.headDimension)
        let forward = Double(c.layerCount) * (2 * n * linear + attention) + 2 * m * Double(c.vocabularySize) * C
        return 3 * forward
    }
}
