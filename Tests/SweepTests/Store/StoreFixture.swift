// StoreFixture: a run database in a temporary folder with a clock the test
// moves, plus small builders for trials and epoch reports.
import Foundation
import Logging
import TestSupport
@testable import Store
@testable import Core
import Store
import Trial

/// A clock that stands still until the test advances it.
final class ManualClock: @unchecked Sendable {
    private let lock = NSLock()
    private var current = Date(timeIntervalSince1970: 1_800_000_000)

    var now: Date { lock.withLock { current } }
    func advance(by seconds: TimeInterval) { lock.withLock { current += seconds } }
}

/// A run database file in its own temporary folder, removed with the fixture.
final class StoreFixture: @unchecked Sendable {
    let folder: TemporaryDirectory
    let clock = ManualClock()
    let logs = CapturedLogs()
    let leaseDuration: TimeInterval
    let retryBackoff: RetryBackoff
    private(set) var store: RunStore

    var path: String { folder.file("run.db").path }

    init(leaseDuration: TimeInterval = 60, retryBackoff: RetryBackoff = RetryBackoff()) throws {
        folder = try TemporaryDirectory()
        self.leaseDuration = leaseDuration
        self.retryBackoff = retryBackoff
        store = try Self.open(folder.file("run.db").path, leaseDuration: leaseDuration, retryBackoff: retryBackoff, clock: clock, logs: logs)
    }

    /// Opens the file again, as a restarted coordinator would (the old store is dropped first).
    func reopen() throws {
        store = try Self.open(path, leaseDuration: leaseDuration, retryBackoff: retryBackoff, clock: clock, logs: logs)
    }

    static func open(_ path: String, leaseDuration: TimeInterval, retryBackoff: RetryBackoff = RetryBackoff(), clock: ManualClock,
                     logs: CapturedLogs) throws -> RunStore {
        try RunStore(path: path, leaseDuration: leaseDuration, retryBackoff: retryBackoff, logger: logs.logger(), clock: { clock.now })
    }

    /// Announces a worker with default details.
    func announce(_ id: String, models: [String] = []) throws {
        try store.announceWorker(WorkerAnnouncement(id: id, host: "host-\(id)", pid: 100, threads: 2,
                                                    protocolVersion: "FSW1", models: models))
    }

    /// Records every epoch of `claimed` from its next one to `epochs` (a trial is done only with all recorded).
    func recordEpochs(of claimed: ClaimedTrial, through epochs: Int = 3) throws {
        for epoch in claimed.nextEpoch...max(claimed.nextEpoch, epochs) where epoch <= epochs {
            _ = try store.recordEpoch(claimed.key, attemptID: claimed.attemptID, report: StoreSamples.epoch(epoch))
        }
    }

    /// Adds `trials` as the sweep "study".
    @discardableResult
    func addSweep(_ trials: [SweepTrial], retryLimit: Int = 2) throws -> AddedSweep {
        try store.addSweep(name: "study", spec: Data(#"{"name":"study"}"#.utf8), trials: trials, retryLimit: retryLimit)
    }
}

enum StoreSamples {
    /// A trial of `condition` (a method name) with `seed`; its key names both.
    static func trial(_ condition: String, seed: UInt64, epochs: Int = 3, model: String = "models/smollm2") -> SweepTrial {
        var training = TrainingSettings()
        let kind = MethodKind(rawValue: condition.split(separator: "-").first.map(String.init) ?? "") ?? .lora
        training.method = MethodSettings(kind: kind, rank: 8, alpha: 16)
        training.learningRate = TrainingSettings.defaultLearningRate(for: kind)
        training.epochs = epochs
        training.seed = seed
        let config = TrialConfig(model: model, data: "data/facts.jsonl", training: training)
        return SweepTrial(key: "\(condition)-\(model.split(separator: "/").last ?? "")-s\(seed)", condition: condition,
                          config: config)
    }

    /// An epoch's report, evaluated when `questions` is not empty.
    static func epoch(_ epoch: Int, loss: Float = 1, questions: [String] = []) -> EpochReport {
        let results = questions.map {
            QuestionResult(question: $0, paraphrase: false, reference: "Paris", answer: "Paris.", similarity: 0.95, keyMatch: true)
        }
        let evaluation = questions.isEmpty ? nil : EvaluationReport(
            accuracy: 0.9, accuracyAtThreshold: 0.75, threshold: 0.9, keyMatch: 1, perplexity: 12.5, seconds: 0.5,
            questions: results)
        return EpochReport(epoch: epoch, loss: loss, epochSeconds: 2, trainSeconds: 2 * Double(epoch), tokens: 640,
                           flops: 1e9, evaluation: evaluation)
    }
}
