// SimulatedTrainer: a trial that trains nothing. Each epoch sleeps a fixed
// time and reports synthetic, deterministic metrics (a loss per epoch, an
// evaluation with an answer per question at the trial's evaluation epochs,
// checkpoints when due), so that the coordinator and the protocol can be
// measured at scale with real worker processes and no model
// (`factsweep worker --simulate`, `factsweep bench sweep`). It stands where
// TrialRunner stands: WorkerClient, TrialExecution and every message are the
// real ones. Not here: anything a real trial computes.
import Core
import Foundation
import Protocol
import Trial

/// Runs trials as timed sleeps with synthetic metrics.
public struct SimulatedTrainer: TrialRunning {
    /// Wall time of one simulated epoch.
    public let epochSeconds: Double
    /// Wall time of each evaluation (the `evaluating` phase, no steps): longer than the lease, it shows
    /// that phases other than training keep their lease.
    public var evaluationSeconds: Double = 0
    /// At this epoch the training loop hangs for good inside a step (never returns, never stops): a stuck
    /// trainer whose attempt must lose its lease while the worker stays alive.
    public var stallEpoch: Int?

    public init(epochSeconds: Double, evaluationSeconds: Double = 0, stallEpoch: Int? = nil) {
        self.epochSeconds = epochSeconds; self.evaluationSeconds = evaluationSeconds; self.stallEpoch = stallEpoch
    }

    /// A simulated worker loads no model.
    public var modelsOnHand: [Message.ModelStorage] { [] }

    public func checkpointEpoch(in directory: URL) throws -> Int? { try SimulatedCheckpoint.read(directory) }

    /// Sleeps `epochs × epochSeconds` on a fixed schedule from the start of the attempt (oversleeping one
    /// epoch does not delay the next), reporting each epoch, evaluating on the trial's schedule (epoch 0 first),
    /// and checkpointing at `checkpointEvery`, at the end and when asked to stop — as `TrialRunner.run` does.
    /// Reads the trial's facts file for the questions it answers; never opens the model.
    public func run(_ config: TrialConfig, directory: URL?, resume: Bool, events: TrialEvents) throws -> TrialSummary {
        let epochs = config.training.epochs
        let facts = try FactDataset.load(URL(fileURLWithPath: config.data)).facts
        let completed = resume ? try directory.flatMap(SimulatedCheckpoint.read) ?? 0 : 0
        events.started(0, completed)
        let start = ContinuousClock.now
        var outcome = TrialOutcome.done
        var last: EpochReport?
        var lastEvaluation: EvaluationReport?
        var evaluationTotal = 0.0
        var evaluationDelay = 0.0
        if completed == 0, config.evaluates(epoch: 0) {
            // The base model, before training: as TrialRunner, no loss and no sleep.
            let evaluation = Self.evaluation(config, facts: facts, epoch: 0)
            lastEvaluation = evaluation
            evaluationTotal += evaluation.seconds
            events.epoch(EpochReport(epoch: 0, loss: .nan, epochSeconds: 0, trainSeconds: 0, evaluation: evaluation))
        }
        for epoch in (completed + 1)..<(max(completed, epochs) + 1) {
            events.phase(.training)
            events.step(epoch, 0)
            let epochStart = ContinuousClock.now
            let due = start + .seconds(epochSeconds * Double(epoch - completed) + evaluationDelay)
            if due > epochStart { Thread.sleep(forTimeInterval: (due - epochStart).seconds) }
            if epoch == stallEpoch { Self.hang() }
            events.step(epoch, 1)
            let evaluates = config.evaluates(epoch: epoch)
            if evaluates, evaluationSeconds > 0 {
                events.phase(.evaluating)
                Thread.sleep(forTimeInterval: evaluationSeconds)
                evaluationDelay += evaluationSeconds
            }
            let evaluation = evaluates ? Self.evaluation(config, facts: facts, epoch: epoch) : nil
            let report = EpochReport(epoch: epoch, loss: Self.loss(config, epoch: epoch),
                                     epochSeconds: (ContinuousClock.now - epochStart).seconds,
                                     trainSeconds: (ContinuousClock.now - start).seconds, evaluation: evaluation)
            last = report
            if let evaluation {
                lastEvaluation = evaluation
                evaluationTotal += evaluation.seconds
            }
            events.epoch(report)
            // As TrialRunner: a non-finite loss ends the trial as diverged, without a checkpoint.
            if !report.loss.isFinite {
                outcome = .diverged
                break
            }
            let stop = events.shouldStop()
            let checkpointDue = config.checkpointEvery > 0 && (epoch % config.checkpointEvery == 0 || epoch == epochs)
            if let directory, checkpointDue || stop {
                events.phase(.checkpointing)
                try SimulatedCheckpoint.write(epoch: epoch, to: directory)
                events.checkpoint(epoch, directory)
            }
            if stop {
                outcome = .stopped
                break
            }
        }
        events.phase(.exporting)
        return TrialSummary(
            outcome: outcome, epochs: last?.epoch ?? completed, finalLoss: last?.loss, trainableParameters: 0,
            baseWeightBytes: 0, peakResidentBytes: ResourceUsage.peakResidentBytes,
            finalAccuracy: lastEvaluation?.accuracy, finalAccuracyAtThreshold: lastEvaluation?.accuracyAtThreshold,
            finalPerplexity: lastEvaluation?.perplexity, secondsPerEpoch: epochSeconds, evaluationSeconds: evaluationTotal)
    }

    /// A training step that never returns (`stallEpoch`).
    private static func hang() -> Never {
        while true { Thread.sleep(forTimeInterval: 3600) }
    }

    // MARK: Synthetic metrics

    /// A learning rate at or above this diverges: its loss is NaN from epoch 2 on (to exercise diverged
    /// trials in simulated sweeps).
    public static let divergingLearningRate: Float = 1

    /// The loss of `epoch`: decays from about 3 towards 0.05, faster for larger learning rates, with a
    /// small seed-dependent ripple. A function of the configuration and the epoch only. NaN from epoch 2
    /// on when the learning rate is at least `divergingLearningRate`.
    public static func loss(_ config: TrialConfig, epoch: Int) -> Float {
        if config.training.learningRate >= divergingLearningRate, epoch >= 2 { return .nan }
        let rate = 0.05 + min(0.5, Double(config.training.learningRate) * 500)
        let ripple = 0.02 * (unitNoise(config.training.seed, UInt64(epoch)) - 0.5)
        return Float(0.05 + 2.95 * exp(-rate * Double(epoch)) + ripple)
    }

    /// Every question and paraphrase of `facts` answered: similarity grows with the epoch; an answer at or
    /// above the threshold is the reference itself, below it a placeholder.
    static func evaluation(_ config: TrialConfig, facts: [Fact], epoch: Int) -> EvaluationReport {
        let progress = 1 - exp(-Double(epoch) / 5)
        var questions: [QuestionResult] = []
        for (index, fact) in facts.enumerated() {
            let asked = [(fact.question, false)] + (fact.evalQuestions ?? []).map { ($0, true) }
            for (number, (question, paraphrase)) in asked.enumerated() {
                let noise = unitNoise(config.training.seed &+ UInt64(index), UInt64(epoch * 64 + number))
                let similarity = Float(min(1, 0.2 + 0.75 * progress + 0.1 * (noise - 0.5) - (paraphrase ? 0.05 : 0)))
                let answer = similarity >= config.threshold ? fact.answer : "(simulated answer)"
                questions.append(QuestionResult(question: question, paraphrase: paraphrase, reference: fact.answer, answer: answer,
                                                similarity: similarity,
                                                keyMatch: fact.key.map { answer.lowercased().contains($0.lowercased()) }))
            }
        }
        let count = Float(max(1, questions.count))
        let keyed = questions.compactMap(\.keyMatch)
        return EvaluationReport(
            accuracy: questions.map(\.similarity).reduce(0, +) / count,
            accuracyAtThreshold: Float(questions.filter { $0.similarity >= config.threshold }.count) / count,
            threshold: config.threshold,
            keyMatch: keyed.isEmpty ? nil : Float(keyed.filter { $0 }.count) / Float(keyed.count),
            perplexity: config.heldOut == "none" ? nil : Float(12 + 3 * progress),
            seconds: 0, questions: questions)
    }

    /// A deterministic number in [0, 1) from two integers (SplitMix64's finaliser).
    static func unitNoise(_ a: UInt64, _ b: UInt64) -> Double {
        var z = a &* 0x9E37_79B9_7F4A_7C15 &+ b &+ 0x632B_E59B_D9B4_E019
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        z ^= z >> 31
        return Double(z >> 11) / Double(1 << 53)
    }
}

/// The checkpoint of a simulated trial: its epoch, as JSON, where a real trial keeps its checkpoint
/// (so that the worker announces and resumes it through the same code).
enum SimulatedCheckpoint {
    struct Contents: Codable { var simulatedEpoch: Int }

    static func write(epoch: Int, to directory: URL) throws {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let data = try JSONEncoder().encode(Contents(simulatedEpoch: epoch))
        try data.write(to: directory.appendingPathComponent(TrainingCheckpoint.fileName), options: .atomic)
    }

    /// The epoch saved in `directory`, or nil when there is no checkpoint; throws for a checkpoint that a
    /// simulated trial did not write.
    static func read(_ directory: URL) throws -> Int? {
        let file = directory.appendingPathComponent(TrainingCheckpoint.fileName)
        guard FileManager.default.fileExists(atPath: file.path) else { return nil }
        do {
            return try JSONDecoder().decode(Contents.self, from: Data(contentsOf: file)).simulatedEpoch
        } catch {
            throw CheckpointError(file: file.path, reason: "is not a simulated trial's checkpoint (\(error))")
        }
    }
}
