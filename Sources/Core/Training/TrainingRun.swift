// TrainingRun: one trial of fine-tuning on a fact dataset, epoch by epoch,
// reporting through a callback (which the CLI prints and the sweep worker
// turns into protocol messages).
import Foundation
import Trial

/// What the callback tells the run after each epoch.
public enum TrainingProgress: Sendable { case more, stop }

/// A fine-tuning trial over tokenised examples.
public final class TrainingRun: @unchecked Sendable {
    public let settings: TrainingSettings
    public let examples: [TrainingExample]
    public let trainer: FineTuning
    private var rng: SeededGenerator
    public private(set) var completedEpochs = 0
    private var trainSeconds: Double = 0
    private var steps = 0
    /// Whether batches lay the prompt prefix their examples share once: the
    /// trainer's default (`FineTuning.sharesPromptPrefix`), or the layout of
    /// the checkpoint the run resumed, so that a resumed run sums as the
    /// uninterrupted one did.
    public private(set) var sharesPromptPrefix: Bool
    /// What the products of the run this one resumed ran on, when its
    /// checkpoint says (`TrainingCheckpoint.State.engine`); nil for a new run.
    public private(set) var checkpointEngine: String?
    /// What this run's products run on.
    public var engine: String { MatmulEngine.productsName(for: trainer.precision) }

    /// What the checkpoint says the run's products ran on: every engine of
    /// its stretches, in order, comma-separated ("onednn,openblas" for a run
    /// resumed elsewhere), so that a mixed run is never recorded as one engine's.
    public var recordedEngine: String {
        guard let earlier = checkpointEngine else { return engine }
        return resumedOnAnotherEngine ? earlier + "," + engine : earlier
    }

    /// Whether this stretch's engine differs from the last one the checkpoint
    /// names (a mixed run resumed on its last stretch's engine does not).
    public var resumedOnAnotherEngine: Bool {
        guard let earlier = checkpointEngine else { return false }
        return earlier.split(separator: ",").last.map(String.init) != engine
    }
    /// Every epoch's report so far, resumed runs included.
    public private(set) var reports: [EpochReport] = []
    /// Called after every optimizer step with (epoch being trained, step in
    /// the epoch): the worker's heartbeat comes from here, so a hung trainer
    /// stops heartbeating.
    public var afterStep: ((Int, Int) -> Void)?
    /// Called as each epoch's training and each evaluation begins: an evaluation has no steps, so the
    /// worker's heartbeats say the phase instead (and keep the attempt's lease while it lasts).
    public var phaseChanged: ((TrialPhase) -> Void)?

    public init(model: LanguageModel, dataset: FactDataset, settings: TrainingSettings, context: ComputeContext) throws {
        self.settings = settings
        examples = try dataset.facts.map { try TrainingExample(fact: $0, model: model) }
        rng = SeededGenerator(seed: settings.seed ^ 0x0dde_4ba7)  // example order; FineTuning draws its own stream
        let batch = settings.batchSize == 0 ? examples.count : min(settings.batchSize, examples.count)
        let maxSeq = examples.map { $0.tokens.count - 1 }.max() ?? 1
        trainer = try FineTuning(base: model.model, method: settings.method, optimizer: settings.optimizer, maxBatch: batch, maxSeq: maxSeq,
                                 seed: settings.seed, precision: settings.productPrecision, context: context)
        sharesPromptPrefix = trainer.sharesPromptPrefix
        if let initAdapter = settings.initAdapter {
            try trainer.loadAdapter(from: URL(fileURLWithPath: initAdapter))
        }
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
            TokenBatch(examples: order[start..<min(order.count, start + b)].map { examples[$0] }, scope: settings.lossScope,
                       sharingPrefix: sharesPromptPrefix)
        }
        let tokens = examples.reduce(0) { $0 + $1.tokens.count - 1 }
        var lossSum: Float = 0, flops: Double = 0
        let start = DispatchTime.now().uptimeNanoseconds
        for (index, batch) in batches.enumerated() {
            let result = trainer.step(batch, lr: schedule.rate(at: steps))
            steps += 1
            afterStep?(completedEpochs + 1, index + 1)
            lossSum += result.loss
            flops += trainer.base.trainingFlops(batch, trainsBase: trainer.method.kind == .full)
        }
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9
        trainSeconds += seconds
        completedEpochs += 1
        let report = EpochReport(epoch: completedEpochs, loss: lossSum / Float(batches.count), epochSeconds: seconds,
                                 trainSeconds: trainSeconds, tokens: tokens, flops: flops)
        reports.append(report)
        return report
    }

    /// Whether every epoch of the settings has run.
    public var isFinished: Bool { completedEpochs >= settings.epochs }

    /// Saves the run's state to `directory` (atomically replacing an older checkpoint).
    public func saveCheckpoint(to directory: URL) throws {
        let state = TrainingCheckpoint.State(
            magic: TrainingCheckpoint.magic, version: TrainingCheckpoint.version, settings: settings,
            modelFingerprint: trainer.base.fingerprint, completedEpochs: completedEpochs, steps: steps,
            optimizerStep: trainer.optimizer.step, orderRNG: rng, dropoutRNG: trainer.dropoutRNG,
            trainSeconds: trainSeconds, sharedPromptPrefix: sharesPromptPrefix, engine: recordedEngine, reports: reports,
            tensors: trainer.trainable.map { .init(name: $0.name, shape: $0.shape) })
        try TrainingCheckpoint.write(state, parameters: trainer.parameters, moments: trainer.optimizer.moments, to: directory)
    }

    /// Continues the run saved in `directory`: same settings, model and data,
    /// bit-identical state. A checkpoint of another model or method is refused.
    public convenience init(resuming directory: URL, model: LanguageModel, dataset: FactDataset, context: ComputeContext) throws {
        let (state, file) = try TrainingCheckpoint.read(directory)
        try self.init(model: model, dataset: dataset, settings: state.settings, context: context)
        let origin = file.origin
        guard state.modelFingerprint == trainer.base.fingerprint else {
            throw CheckpointError(file: origin, reason: "made with another base model (\(state.modelFingerprint)); this one is \(trainer.base.fingerprint)")
        }
        let expected = trainer.trainable.map { TrainingCheckpoint.TensorName(name: $0.name, shape: $0.shape) }
        guard state.tensors == expected else {
            throw CheckpointError(file: origin, reason: "its trained tensors do not match the \(state.settings.method.kind.rawValue) method on this model")
        }
        if let shared = state.sharedPromptPrefix {
            guard !shared || settings.method.dropout == 0 else {
                throw CheckpointError(file: origin, reason: "says its batches shared a prompt prefix, which LoRA dropout (\(settings.method.dropout)) rules out")
            }
            sharesPromptPrefix = shared
        }
        checkpointEngine = state.engine
        let optimizer = trainer.optimizer
        // Both moments, count each, whichever their storage (F32, or BF16 bits).
        let bf16Moments = optimizer.settings.momentPrecision == .bf16
        for (name, count) in [("parameters", trainer.parameters.capacity), ("adam_moments", 2 * optimizer.count)] {
            guard file.shape(of: name) == [count] else {
                throw CheckpointError(file: origin, reason: "tensor \(name) has shape \(file.shape(of: name) ?? []), expected [\(count)]")
            }
        }
        try file.read("parameters", into: trainer.parameters.buffer)
        trainer.parametersChanged()
        if bf16Moments {
            try file.readBFloat16Bits("adam_moments", into: optimizer.momentBits)
        } else {
            try file.read("adam_moments", into: optimizer.moments.buffer)
        }
        trainer.optimizer.restore(step: state.optimizerStep)
        trainer.dropoutRNG = state.dropoutRNG
        rng = state.orderRNG
        completedEpochs = state.completedEpochs
        steps = state.steps
        trainSeconds = state.trainSeconds
        reports = state.reports
    }

    /// Runs the remaining epochs, reporting each; stops early when asked.
    /// With an evaluator, the epochs `evaluates` accepts (the trial's schedule,
    /// `TrialConfig.evaluates(epoch:)`) are evaluated after training them;
    /// evaluation time is not training time.
    public func run(evaluator: FactEvaluator? = nil, evaluates: (Int) -> Bool = { _ in true },
                    _ progress: (EpochReport) throws -> TrainingProgress) throws {
        while completedEpochs < settings.epochs {
            phaseChanged?(.training)
            var report = runEpoch()
            if let evaluator, report.loss.isFinite, evaluates(report.epoch) {
                phaseChanged?(.evaluating)
                report.evaluation = try ProductPrecision.run(trainer.precision) {
                    try evaluator.evaluate(trainer.network, context: trainer.context)
                }
                reports[reports.count - 1] = report
            }
            if try progress(report) == .stop { return }
        }
    }

    /// The first epoch whose evaluation reached `threshold` accuracy.
    public func epochsToThreshold(_ threshold: Float) -> Int? {
        reports.first { ($0.evaluation?.accuracy ?? 0) >= threshold }?.epoch
    }
}

extension LlamaModel {
    /// FLOPs of the matrix products one training step on `batch` executes:
    /// forward, backward's input gradients and, when the base itself trains
    /// (full fine-tuning), its weight gradients (each as many as forward's).
    /// Attention's products have no weights: their backward is twice their
    /// forward whatever trains. Without weight gradients nothing below layer
    /// 0's attention trains, and backward forms no input gradient through its
    /// q, k and v projections (`LlamaNetwork.backward`). Past its attention
    /// the last layer runs the labelled rows alone (LastLayerRows.swift).
    /// The adapters' own rank-r products are left out (under 1% of a step at
    /// rank 8 on two projections).
    public func trainingFlops(_ batch: TokenBatch, trainsBase: Bool) -> Double {
        let c = config, n = Double(batch.rowCount), m = Double(batch.labelledCount)
        let C = Double(c.hiddenSize), F = Double(c.intermediateSize)
        let linear = C * Double(c.queryWidth) * 2 + C * Double(c.kvWidth) * 2 + 3 * C * F
        // Each sequence's scores: its rows by the keys they see (a shared prefix's first).
        let squares = Double(batch.lengths.enumerated().reduce(0) { sum, sequence in
            sum + sequence.element * ((sequence.offset == 0 ? 0 : batch.sharedPrefix) + sequence.element)
        })
        let attention = 4 * Double(c.headCount) * squares * Double(c.headDimension)
        // A compacted last layer runs o and the MLP over the labelled rows alone (LastLayerRows.swift).
        let compacted = LlamaNetwork.compactsLastLayer(rows: batch.labelledCount, of: batch.rowCount)
        let skipped = compacted ? 2 * (n - m) * (C * Double(c.queryWidth) + 3 * C * F) : 0
        let weighted = Double(c.layerCount) * 2 * n * linear - skipped + 2 * m * Double(c.vocabularySize) * C
        let scores = Double(c.layerCount) * attention
        if trainsBase { return 3 * (weighted + scores) }
        return 2 * weighted + 3 * scores - 2 * n * C * Double(c.queryWidth + 2 * c.kvWidth)
    }

    /// FLOPs of the matrix products of decoding that ran `layerRows` rows
    /// through the layers and `headRows` through the output head (what
    /// `CachedGenerator` counts); attention over the cache is left out. The
    /// rows the head does not read stop at the last layer's attention
    /// (LastLayerRows.swift): its o projection and MLP run `headRows` rows.
    public func decodingFlops(layerRows: Int, headRows: Int) -> Double {
        let c = config, C = Double(c.hiddenSize), F = Double(c.intermediateSize)
        let linear = C * Double(c.queryWidth) * 2 + C * Double(c.kvWidth) * 2 + 3 * C * F
        let stopped = LlamaNetwork.lastLayerRows.isOn ? Double(max(0, layerRows - headRows)) * (C * Double(c.queryWidth) + 3 * C * F) : 0
        return 2 * (Double(layerRows) * Double(c.layerCount) * linear - stopped) + 2 * Double(headRows) * Double(c.vocabularySize) * C
    }
}
