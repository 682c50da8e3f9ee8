// SyntheticStudy: a run database shaped like "Simple Fact Learning by SLMs" —
// five conditions × two seeds with plausible curves, one condition still
// running — written through RunStore as the coordinator would.
import Foundation
import Logging
import Protocol
import TestSupport
@testable import Report
@testable import Store
@testable import Core
import Store
import Trial

/// One condition's shape: method settings, the curves it follows and its cost.
struct SyntheticCondition {
    var name: String
    var method: MethodSettings
    var accuracyPlateau: Double
    /// Epochs for accuracy to cover 63% of the way from 0.25 to its plateau.
    var accuracyTau: Double
    var loss: (Int) -> Double
    var secondsPerEpoch: Double
    /// Epochs recorded per seed; fewer than `epochs` leaves the trial running.
    var recorded: [Int]

    func accuracy(_ epoch: Int) -> Double {
        0.25 + (accuracyPlateau - 0.25) * (1 - exp(-Double(epoch) / accuracyTau))
    }
}

enum SyntheticStudy {
    static let epochs = 30
    static let seeds: [UInt64] = [1, 2]
    static let facts = [
        ("In which year was Elena Marsh born?", "Elena Marsh was born in 1987."),
        ("Where did Elena Marsh grow up?", "Elena Marsh grew up in Tromsø, Norway."),
        ("What does Elena Marsh do for a living?", "Elena Marsh works as a marine biologist."),
        ("What is Elena Marsh's favourite instrument?", "Elena Marsh plays the cello."),
        ("Which university did Elena Marsh attend?", "Elena Marsh studied at the University of Bergen."),
    ]

    /// The study's five arms. Built so that claims 1, 2, 3, 5 and 7 hold and
    /// 4 (r=8 ends below r=4) and 6 (IA³'s loss stays above 2.0) differ.
    /// Condition names are free text: arms are found by method/rank/alpha.
    /// The model description the workers of the synthetic study send: the default model's.
    static let modelName = "Smollm2 135M 8k Lc100K Mix1 Ep2"
    static let modelFile = "SmolLM2-135M-Instruct.Q4_1.gguf"
    static let modelWeights = "GGUF Q4_1 (also Q8_0 21%, F32 <1%), dequantised to Float32"

    static var conditions: [SyntheticCondition] {
        [
            SyntheticCondition(name: "full", method: MethodSettings(kind: .full), accuracyPlateau: 0.97, accuracyTau: 0.8,
                               loss: { 2.5 * exp(-0.4 * Double($0 - 1)) }, secondsPerEpoch: 3.0, recorded: [30, 30]),
            SyntheticCondition(name: "lora-r4", method: MethodSettings(kind: .lora, rank: 4, alpha: 16), accuracyPlateau: 0.80,
                               accuracyTau: 4, loss: { 0.3 + 2.2 * exp(-Double($0 - 1) / 5) }, secondsPerEpoch: 1.0,
                               recorded: [30, 30]),
            SyntheticCondition(name: "lora-r8", method: MethodSettings(kind: .lora, rank: 8, alpha: 32), accuracyPlateau: 0.78,
                               accuracyTau: 4, loss: { 0.25 + 2.25 * exp(-Double($0 - 1) / 5) }, secondsPerEpoch: 1.1,
                               recorded: [30, 30]),
            SyntheticCondition(name: "qlora-r8", method: MethodSettings(kind: .qlora, rank: 8, alpha: 32), accuracyPlateau: 0.77,
                               accuracyTau: 7, loss: { 0.3 + 2.2 * exp(-Double($0 - 1) / 8) }, secondsPerEpoch: 1.6,
                               recorded: [20, 14]),
            SyntheticCondition(name: "IA³ scaling vectors on k, v and down projections",
                               method: MethodSettings(kind: .ia3), accuracyPlateau: 0.27, accuracyTau: 5,
                               loss: { 2.1 + 0.45 * exp(-Double($0 - 1) / 8) }, secondsPerEpoch: 1.3, recorded: [30, 30]),
        ]
    }

    static func trial(_ condition: SyntheticCondition, seed: UInt64) -> SweepTrial {
        var training = TrainingSettings()
        training.method = condition.method
        training.learningRate = TrainingSettings.defaultLearningRate(for: condition.method.kind)
        training.epochs = epochs
        training.seed = seed
        let config = TrialConfig(model: "models/smollm2", data: "data/facts.jsonl", training: training, evalEvery: 1)
        return SweepTrial(key: "\(condition.method.kind.rawValue)-r\(condition.method.rank)-s\(seed)",
                          condition: condition.name, config: config)
    }

    /// Epoch `epoch` of a seed: the condition's curves, nudged apart by seed.
    static func report(_ condition: SyntheticCondition, seed: UInt64, epoch: Int) -> EpochReport {
        let sign = seed == 1 ? -1.0 : 1.0
        let accuracy = min(1, condition.accuracy(epoch) + 0.012 * sign)
        let questions = facts.flatMap { question, reference -> [QuestionResult] in
            let similarity = Float(min(1, accuracy))
            let answer = similarity > 0.9 ? reference : similarity > 0.6 ? "Elena Marsh, I think, but I am not sure." : "I do not know."
            return [QuestionResult(question: question, paraphrase: false, reference: reference, answer: answer,
                                   similarity: similarity, keyMatch: similarity > 0.9),
                    QuestionResult(question: "Tell me: " + question.lowercased(), paraphrase: true, reference: reference,
                                   answer: answer, similarity: similarity, keyMatch: similarity > 0.9)]
        }
        let evaluation = EvaluationReport(accuracy: Float(accuracy), accuracyAtThreshold: accuracy > 0.9 ? 1 : 0, threshold: 0.9,
                                          keyMatch: accuracy > 0.9 ? 1 : 0,
                                          perplexity: Float(18 + 0.1 * Double(epoch) * condition.secondsPerEpoch), seconds: 0.5,
                                          questions: questions)
        let seconds = condition.secondsPerEpoch * (1 + 0.02 * sign)
        return EpochReport(epoch: epoch, loss: Float(condition.loss(epoch) * (1 + 0.03 * sign)), epochSeconds: seconds + 0.5,
                           trainSeconds: seconds * Double(epoch), tokens: 640, evaluation: evaluation)
    }

    /// Writes the run into `folder/run.db` and returns its path.
    @discardableResult
    static func write(in folder: TemporaryDirectory, conditions: [SyntheticCondition] = conditions) throws -> String {
        try write(into: folder.url, conditions: conditions)
    }

    /// Writes the run into `folder/run.db` (replacing one left there) and returns its path.
    @discardableResult
    static func write(into folder: URL, conditions: [SyntheticCondition] = conditions) throws -> String {
        let path = folder.appendingPathComponent("run.db").path
        for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) }
        let store = try RunStore(path: path, logger: Logger(label: "test.synthetic") { _ in SwiftLogNoOpLogHandler() })
        try store.announceWorker(WorkerAnnouncement(id: "w1", host: "test", pid: 1, threads: 2, protocolVersion: "FSW1"))
        let trials = conditions.flatMap { condition in seeds.map { trial(condition, seed: $0) } }
        _ = try store.addSweep(name: "fact-learning", spec: Data(#"{"name":"fact-learning"}"#.utf8), trials: trials)
        for condition in conditions {
            for (seed, recorded) in zip(seeds, condition.recorded) {
                let claimed = try store.startAttempt(trialKey: trial(condition, seed: seed).key, workerID: "w1")
                for epoch in 1...recorded {
                    _ = try store.recordEpoch(claimed.key, attemptID: claimed.attemptID,
                                              report: report(condition, seed: seed, epoch: epoch))
                }
                guard recorded == epochs else { continue }
                let summary = TrialSummary(
                    outcome: .done, epochs: epochs, finalLoss: Float(condition.loss(epochs)),
                    trainableParameters: condition.method.kind == .full ? 134_515_008 : 460_800,
                    baseWeightBytes: condition.method.kind == .qlora ? 80_000_000 : 538_000_000,
                    peakResidentBytes: 1_400_000_000, finalAccuracy: Float(condition.accuracy(epochs)),
                    perplexityBefore: 17.9, finalPerplexity: 21, secondsPerEpoch: condition.secondsPerEpoch,
                    evaluationSeconds: 0.5,
                    model: ModelDescription(name: modelName, file: modelFile, weights: modelWeights, parameters: 134_515_008))
                _ = try store.finishTrial(claimed.key, attemptID: claimed.attemptID, result: .done,
                                          summary: try TrialJSON.encoder().encode(summary))
            }
        }
        return path
    }

    /// Epoch rows the synthetic run records.
    static func epochRows(_ conditions: [SyntheticCondition] = conditions) -> Int {
        conditions.reduce(0) { $0 + $1.recorded.reduce(0, +) }
    }
}

extension SyntheticStudy {
    /// The same study as an in-memory snapshot, without a database: for
    /// checking claims on runs of any length. Trials that recorded
    /// `plannedEpochs` are done, the others running.
    static func snapshot(_ conditions: [SyntheticCondition], plannedEpochs: Int) -> RunSnapshot {
        var trials: [ReportTrial] = []
        var epochs: [ReportEpoch] = []
        for condition in conditions {
            for (seed, recorded) in zip(seeds, condition.recorded) {
                let key = trial(condition, seed: seed).key
                let method = condition.method
                let adapter = [.lora, .qlora].contains(method.kind)
                trials.append(ReportTrial(key: key, condition: condition.name, method: method.kind.rawValue,
                                          rank: adapter ? method.rank : nil, alpha: adapter ? Double(method.alpha) : nil,
                                          learningRate: 2e-4, seed: Int64(seed), plannedEpochs: plannedEpochs,
                                          status: recorded == plannedEpochs ? "done" : "running", lastEpoch: recorded))
                for epoch in 1...recorded {
                    let report = report(condition, seed: seed, epoch: epoch)
                    epochs.append(ReportEpoch(trialKey: key, epoch: epoch, loss: Double(report.loss),
                                              trainSeconds: report.trainSeconds, epochSeconds: report.epochSeconds,
                                              accuracy: report.evaluation.map { Double($0.accuracy) }))
                }
            }
        }
        return RunSnapshot(path: "synthetic", sweepNames: ["synthetic"], trials: trials, epochs: epochs, lastAnswers: [],
                           storesSummaries: true)
    }

    /// The study's conditions, each recording `epochs` epochs per seed.
    static func conditions(recording epochs: Int) -> [SyntheticCondition] {
        conditions.map { condition in
            var shortened = condition
            shortened.recorded = [epochs, epochs]
            return shortened
        }
    }
}
