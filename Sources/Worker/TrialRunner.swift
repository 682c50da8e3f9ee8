// TrialRunner: one trial from its TrialConfig to its summary — the code path
// of both `factsweep train` and the sweep worker, so single runs and sweeps
// never disagree.
import Core
import Foundation
import Logging
import Protocol
import Trial

/// What a trial tells its caller as it goes. Every field has a no-op default.
public struct TrialEvents: Sendable {
    /// Once the run is set up: trainable parameters, epochs already done (resume).
    public var started: @Sendable (_ trainable: Int, _ completedEpochs: Int) -> Void = { _, _ in }
    public var baseline: @Sendable (_ perplexity: Float) -> Void = { _ in }
    public var epoch: @Sendable (EpochReport) -> Void = { _ in }
    public var checkpoint: @Sendable (_ epoch: Int, _ directory: URL) -> Void = { _, _ in }
    /// After every optimizer step (epoch, step): heartbeats.
    public var step: @Sendable (Int, Int) -> Void = { _, _ in }
    /// When the trial enters a phase (loading, baseline, training, evaluating …): heartbeats carry it, and
    /// only the training phase needs steps to keep its lease.
    public var phase: @Sendable (TrialPhase) -> Void = { _ in }
    /// Asked after every epoch; true checkpoints and stops the trial.
    public var shouldStop: @Sendable () -> Bool = { false }

    public init() {}
}

/// What a worker runs its trials with: the real `TrialRunner`, or the
/// `SimulatedTrainer` of the scale benchmark. Both see a trial the same way.
public protocol TrialRunning: Sendable {
    /// Runs `config` (see `TrialRunner.run`), reporting through `events`.
    func run(_ config: TrialConfig, directory: URL?, resume: Bool, events: TrialEvents) throws -> TrialSummary
    /// The models on hand and the storage each is loaded in, for the worker's hello and each `ready`.
    var modelsOnHand: [Message.ModelStorage] { get }
    /// The epoch the checkpoint in `directory` was saved after, nil when there is none; throws for a file
    /// that is not this runner's checkpoint. A resume checks it against the epoch its assignment names.
    func checkpointEpoch(in directory: URL) throws -> Int?
}

/// Runs trials over a shared model cache.
public final class TrialRunner: TrialRunning, @unchecked Sendable {
    public let cache: ModelCache
    public let context: ComputeContext
    private let logger: Logger

    public init(cache: ModelCache, context: ComputeContext, logger: Logger) {
        self.cache = cache; self.context = context; self.logger = logger
    }

    public var modelsOnHand: [Message.ModelStorage] { cache.modelsOnHand }

    public func checkpointEpoch(in directory: URL) throws -> Int? {
        guard FileManager.default.fileExists(atPath: directory.appendingPathComponent(TrainingCheckpoint.fileName).path) else { return nil }
        return try TrainingCheckpoint.read(directory).0.completedEpochs
    }

    /// Runs `config`, continuing from `directory`'s checkpoint when `resume`
    /// and one is there. Checkpoints (every `checkpointEvery` epochs, at the
    /// end and when stopped), the final adapter and `evaluation.json` go to
    /// `directory` when given.
    public func run(_ config: TrialConfig, directory: URL?, resume: Bool, events: TrialEvents) throws -> TrialSummary {
        events.phase(.loading)
        if config.training.productPrecision == .bf16, let notice = MatmulEngine.bf16Notice { logger.warning("\(notice)") }
        let storage = LinearStorage.training(config.training.method.kind, precision: config.training.productPrecision)
        // Full fine-tuning multiplies by its own copy of the base: the packed copies earlier adapter
        // trials made of the frozen one would sit idle beside it (3.9 GB at Llama-3.2-1B).
        let dropsCopies = config.training.method.kind == .full
        return try cache.withLanguageModel(URL(fileURLWithPath: config.model), storage: storage, context: context, whenAlone: { lm in
            guard dropsCopies else { return }
            let freed = lm.model.dropFloat32Copies()
            if freed > 0 { logger.info("dropped the base's packed copies for full fine-tuning", metadata: ["bytes": "\(freed)"]) }
        }) { lm in
            try run(config, model: lm, directory: directory, resume: resume, events: events)
        }
    }

    /// `run(_:directory:resume:events:)` on the model the cache holds for it.
    private func run(_ config: TrialConfig, model lm: LanguageModel, directory: URL?, resume: Bool, events: TrialEvents) throws -> TrialSummary {
        let dataset = try FactDataset.load(URL(fileURLWithPath: config.data))
        let checkpointFile = directory?.appendingPathComponent(TrainingCheckpoint.fileName)
        let run: TrainingRun
        if resume, let directory, let checkpointFile, FileManager.default.fileExists(atPath: checkpointFile.path) {
            run = try TrainingRun(resuming: directory, model: lm, dataset: dataset, context: context)
            guard run.settings == config.training else {
                throw CheckpointError(file: checkpointFile.path, reason: "was made with other training settings than this trial's")
            }
            if run.resumedOnAnotherEngine, let was = run.checkpointEngine {
                logger.warning("\(checkpointFile.path): made with products on \(was), resumed on \(run.engine): the epochs from here sum in another order than an uninterrupted run's (last bits)")
            }
        } else {
            run = try TrainingRun(model: lm, dataset: dataset, settings: config.training, context: context)
        }
        run.afterStep = events.step
        run.phaseChanged = events.phase
        let evaluator = try makeEvaluator(config, model: lm, dataset: dataset)
        events.started(run.trainer.trainableParameterCount, run.completedEpochs)

        var perplexityBefore: Float?
        if let evaluator, evaluator.heldOut != nil, run.completedEpochs == 0 {
            events.phase(.baseline)
            let p = ProductPrecision.run(run.trainer.precision) { evaluator.perplexity(run.trainer.network, context: context) }
            perplexityBefore = p
            if let p { events.baseline(p) }
        }
        var base: EpochReport?
        if let evaluator, run.completedEpochs == 0, config.evaluates(epoch: 0) {
            events.phase(.evaluating)
            let report = try Self.baseEvaluation(evaluator, run: run)
            events.epoch(report)
            base = report
        }
        var outcome = TrialOutcome.done
        let epochs = config.training.epochs
        try run.run(evaluator: evaluator, evaluates: config.evaluates(epoch:)) { report in
            events.epoch(report)
            if !report.loss.isFinite { outcome = .diverged; return .stop }
            let stop = events.shouldStop()
            let due = config.checkpointEvery > 0 && (report.epoch % config.checkpointEvery == 0 || report.epoch == epochs)
            if let directory, due || stop {
                events.phase(.checkpointing)
                try run.saveCheckpoint(to: directory)
                events.checkpoint(report.epoch, directory)
            }
            if stop { outcome = .stopped; return .stop }
            return .more
        }
        events.phase(.exporting)
        if let directory, outcome == .done, config.training.method.kind != .full {
            try run.trainer.exportAdapter(to: directory.appendingPathComponent("adapter"), baseModel: lm.adapterBaseModel)
        }
        let lastEvaluation = run.reports.last { $0.evaluation != nil }?.evaluation ?? base?.evaluation
        if let directory, let lastEvaluation {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            try encoder.encode(lastEvaluation).write(to: directory.appendingPathComponent("evaluation.json"), options: .atomic)
        }
        let last = run.reports.last
        let epochsRun = last?.epoch ?? 0
        let evaluationSeconds: Double = run.reports.reduce(base?.evaluation?.seconds ?? 0) { $0 + ($1.evaluation?.seconds ?? 0) }
        return TrialSummary(
            outcome: outcome, epochs: epochsRun, finalLoss: last?.loss,
            trainableParameters: run.trainer.trainableParameterCount, baseWeightBytes: lm.model.baseWeightBytes,
            peakResidentBytes: ResourceUsage.peakResidentBytes, finalAccuracy: lastEvaluation?.accuracy,
            finalAccuracyAtThreshold: lastEvaluation?.accuracyAtThreshold,
            epochsToThreshold: run.epochsToThreshold(config.threshold), perplexityBefore: perplexityBefore,
            finalPerplexity: lastEvaluation?.perplexity,
            secondsPerEpoch: (last?.trainSeconds ?? 0) / Double(max(1, epochsRun)), evaluationSeconds: evaluationSeconds,
            model: lm.modelDescription, engine: run.recordedEngine)
    }

    /// Epoch 0: the base model (with its adapter's initial state) evaluated before any training. It has no
    /// training loss (NaN, stored as NULL); its time is the evaluation's.
    static func baseEvaluation(_ evaluator: FactEvaluator, run: TrainingRun) throws -> EpochReport {
        let evaluation = try ProductPrecision.run(run.trainer.precision) {
            try evaluator.evaluate(run.trainer.network, context: run.trainer.context)
        }
        return EpochReport(epoch: 0, loss: .nan, epochSeconds: evaluation.seconds, trainSeconds: 0, evaluation: evaluation)
    }

    /// The trial's evaluator, or nil when it evaluates never.
    func makeEvaluator(_ config: TrialConfig, model: LanguageModel, dataset: FactDataset) throws -> FactEvaluator? {
        guard config.evaluatesAny else { return nil }
        let embedderURL = try DefaultPaths.resolve(config.embedder, default: DefaultPaths.embedder, what: "sentence embedder")
        var evaluator = FactEvaluator(model: model, embedder: try cache.embedder(embedderURL), dataset: dataset)
        evaluator.threshold = config.threshold
        evaluator.maxNewTokens = config.maxNewTokens
        if config.heldOut != "none" {
            let url = try DefaultPaths.resolve(config.heldOut, default: DefaultPaths.heldOut, what: "held-out text")
            let text: String
            do { text = try String(contentsOf: url, encoding: .utf8) } catch {
                throw LoadError.unreadable(file: url.path, reason: error.localizedDescription)
            }
            evaluator.heldOut = try model.encode(text)
        }
        return evaluator
    }
}
