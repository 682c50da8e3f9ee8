// DashboardReader: the dashboard's one read-only connection to run.db and the
// reads behind each endpoint. Every read is one transaction, so a poll shows a
// consistent moment of a running sweep; the coordinator stays the only writer.
import Foundation
import GRDB
import Logging
import Report
import Store

/// Reads what the dashboard shows from a run database, never writing.
public final class DashboardReader: Sendable {
    public let path: String
    private let queue: DatabaseQueue
    private let logger: Logger

    /// Opens `location` (a run directory or its run.db) read-only; refuses a missing file or one that is
    /// not a run database, naming it.
    public init(location: String, logger: Logger) throws {
        path = RunSnapshotReader.databasePath(for: location)
        queue = try RunSnapshotReader.openReadOnly(path: path)
        self.logger = logger
    }

    /// The run now: progress, charts, trials and workers.
    public func state(now: Date = Date()) throws -> DashboardState {
        let (snapshot, status, workers, heartbeats, recorded, refused) = try queue.read { db in
            (try RunSnapshotReader.read(db, path: path, answers: false), try RunStatus.read(db, now: now), try WorkerListing.fetchAll(db),
             try Self.heartbeatAges(db, now: now),
             try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM epoch_metrics WHERE epoch > 0") ?? 0,
             try RunStore.refusedTrials(db, limit: nil).trials)
        }
        let waiting = Dictionary(refused.map { ($0.trial, Self.waiting($0)) }, uniquingKeysWith: { first, _ in first })
        let aggregates = ConditionAggregate.all(in: snapshot)
        // Trials and workers are shown under their chart line: the condition, and what sets it apart under a grid axis.
        let lines = ConditionAggregate.lineNames(aggregates)
        let charts = ReportFigures.figures(aggregates).map {
            DashboardState.Chart(name: $0.fileName, title: $0.chart.title, svg: SVGChartWriter.svg($0.chart))
        }
        var rowsByTrial: [String: [ReportEpoch]] = [:]
        for row in snapshot.epochs { rowsByTrial[row.trialKey, default: []].append(row) }
        let trials = snapshot.trials.map { trial in
            let rows = rowsByTrial[trial.key] ?? []
            let evaluated = rows.last { $0.accuracy != nil }
            return DashboardState.TrialRow(
                key: trial.key, condition: lines[trial.key] ?? trial.condition, method: trial.method, rank: trial.rank,
                learningRate: trial.learningRate, seed: trial.seed, status: trial.status, lastEpoch: trial.lastEpoch,
                epochs: trial.plannedEpochs, accuracy: evaluated?.accuracy, lastEvaluatedEpoch: evaluated?.epoch,
                loss: rows.last { $0.loss != nil }?.loss,
                decision: trial.stopping.map { "\($0.rule) rule at epoch \($0.epoch): \($0.reason)" },
                waiting: waiting[trial.key])
        }
        let trialsByKey = Dictionary(snapshot.trials.map { ($0.key, $0) }, uniquingKeysWith: { first, _ in first })
        let workerRows = workers.map { worker in
            let trial = worker.runningTrial.flatMap { trialsByKey[$0] }
            return DashboardState.WorkerRow(id: worker.id, host: worker.host, status: worker.status.rawValue,
                                            trial: worker.runningTrial, condition: trial.map { lines[$0.key] ?? $0.condition },
                                            epoch: trial.map { min($0.lastEpoch + 1, $0.plannedEpochs) },
                                            heartbeatAgeSeconds: heartbeats[worker.id])
        }
        var byStatus: [String: Int] = [:]
        for (state, count) in status.trialsByStatus { byStatus[state.rawValue] = count }
        let progress = DashboardState.RunProgress(
            database: path, sweeps: snapshot.sweepNames, trials: byStatus, totalTrials: snapshot.trials.count,
            epochsRecorded: recorded, epochsPlanned: snapshot.trials.map(\.plannedEpochs).reduce(0, +),
            epochsPerHour: status.epochsPerHour, etaSeconds: status.estimatedSecondsRemaining,
            etaIsUpperBound: status.estimateIsUpperBound, connectedWorkers: status.connectedWorkers)
        return DashboardState(readAt: ISO8601DateFormatter().string(from: now), run: progress, charts: charts,
                              trials: trials, workers: workerRows)
    }

    /// Every evaluation of trial `key` with its answers; nil for a trial the run does not hold.
    public func answers(of key: String) throws -> TrialAnswers? {
        try queue.read { db in
            guard let condition = try String.fetchOne(db, sql: "SELECT condition FROM trials WHERE key = ?", arguments: [key]) else {
                return nil
            }
            let accuracy = Dictionary(
                try Row.fetchAll(db, sql: "SELECT epoch, accuracy FROM epoch_metrics WHERE trial_key = ? AND accuracy IS NOT NULL",
                                 arguments: [key]).map { ($0["epoch"] as Int, $0["accuracy"] as Double) },
                uniquingKeysWith: { first, _ in first })
            var evaluations: [TrialAnswers.Evaluation] = []
            for row in try Row.fetchAll(db, sql: """
                SELECT epoch, question, paraphrase, reference, answer, similarity FROM question_outputs
                WHERE trial_key = ? ORDER BY epoch, id
                """, arguments: [key]) {
                let epoch: Int = row["epoch"]
                if evaluations.last?.epoch != epoch {
                    evaluations.append(.init(epoch: epoch, accuracy: accuracy[epoch], answers: []))
                }
                evaluations[evaluations.count - 1].answers.append(.init(
                    question: row["question"], paraphrase: row["paraphrase"], reference: row["reference"],
                    answer: row["answer"], similarity: row["similarity"]))
            }
            return TrialAnswers(key: key, condition: condition, evaluations: evaluations)
        }
    }

    /// A refused trial's line in the table: who refused it, and the latest reason (it names the settings).
    static func waiting(_ refused: RefusedTrial) -> String {
        "for a worker whose build reads its settings; refused by \(refused.workers.joined(separator: ", ")): \(refused.reason.prefix(300))"
    }

    /// Seconds since each worker was last heard from (the store's `last_seen`, renewed by its heartbeats).
    private static func heartbeatAges(_ db: Database, now: Date) throws -> [String: Double] {
        var ages: [String: Double] = [:]
        for row in try Row.fetchAll(db, sql: "SELECT id, last_seen FROM workers") {
            if let seen = row["last_seen"] as Date? { ages[row["id"]] = max(0, now.timeIntervalSince(seen)) }
        }
        return ages
    }
}
