// DashboardReader: the dashboard's one read-only connection to run.db and the
// reads behind each endpoint. Every read is one transaction, so a poll shows a
// consistent moment of a running sweep (what it keeps from an earlier poll is
// kept only while nothing was committed since); the coordinator stays the only
// writer.
import Foundation
import GRDB
import Logging
import Report
import Store

/// Reads what the dashboard shows from a run database, never writing.
///
/// A poll must stay cheap on a large sweep: at 100,000 trials of 10 epochs a
/// poll read every row, decoded every trial's configuration, and sent all
/// 100,000 trials to the page, 17 s and 27 MB each (docs/benchmarks.md, "Live
/// dashboard at 100,000 trials"). So what comes from the run's rows (counts,
/// charts, the trials' lines) is kept until another connection commits
/// (`PRAGMA data_version`); trials' settings are decoded once each
/// (`TrialSettingsCache`); and the page gets at most `trialRowLimit` trials,
/// those its filter matches, with how many match.
public final class DashboardReader: @unchecked Sendable {
    public let path: String
    private let queue: DatabaseQueue
    private let logger: Logger
    private let settings = TrialSettingsCache()
    /// Held for a whole state: a second poll waits for the first's rows rather than reading them again.
    private let lock = NSLock()
    private var rows: (dataVersion: Int64, rows: RunRows)?
    /// Times the run's rows were read (not taken from `rows`).
    private var rowReadCount = 0
    /// Times the run's rows were read: for the tests.
    var rowReads: Int { lock.withLock { rowReadCount } }

    /// Trials a state lists at most: the page renders every row at every poll.
    public static let trialRowLimit = 500

    /// Opens `location` (a run directory or its run.db) read-only; refuses a missing file or one that is
    /// not a run database, naming it.
    public init(location: String, logger: Logger) throws {
        path = RunSnapshotReader.databasePath(for: location)
        queue = try RunSnapshotReader.openReadOnly(path: path)
        self.logger = logger
    }

    /// What a state takes from the run's rows alone, not from the time of the poll: kept while no other
    /// connection commits.
    struct RunRows {
        var sweeps: [String]
        var totalTrials: Int
        var epochsRecorded: Int
        var epochsPlanned: Int
        var charts: [DashboardState.Chart]
        var trials: [DashboardState.TrialRow]
        /// `searchText` of each of `trials`.
        var searchText: [String]
        /// Each trial's index in `trials`, for the workers' rows.
        var indexByKey: [String: Int]
    }

    /// The run now: progress, charts, workers, and the first `limit` trials that `filter` matches (every
    /// word of it, ignoring case, in the trial's key, line, method or status; all trials when empty).
    public func state(now: Date = Date(), filter: String = "", limit: Int = trialRowLimit) throws -> DashboardState {
        try lock.withLock {
            // One transaction: the version is that of the moment it reads, so rows kept under the same
            // version are the rows of this moment, and the whole state shows one moment of the run.
            let (version, rows, status, workers, heartbeats) = try queue.read { db in
                let version = try Int64.fetchOne(db, sql: "PRAGMA data_version") ?? 0
                let rows = try self.rows.flatMap { $0.dataVersion == version ? $0.rows : nil } ?? runRows(db)
                return (version, rows, try RunStatus.read(db, now: now), try WorkerListing.fetchAll(db),
                        try Self.heartbeatAges(db, now: now))
            }
            self.rows = (version, rows)
            let words = filter.lowercased().split(whereSeparator: \.isWhitespace).map(String.init)
            let matching = words.isEmpty ? rows.trials
                : zip(rows.trials, rows.searchText).filter { _, text in words.allSatisfy(text.contains) }.map(\.0)
            let workerRows = workers.map { worker in
                let trial = worker.runningTrial.flatMap { rows.indexByKey[$0] }.map { rows.trials[$0] }
                return DashboardState.WorkerRow(id: worker.id, host: worker.host, status: worker.status.rawValue,
                                                trial: worker.runningTrial, condition: trial?.condition,
                                                epoch: trial.map { min($0.lastEpoch + 1, $0.epochs) },
                                                heartbeatAgeSeconds: heartbeats[worker.id])
            }
            var byStatus: [String: Int] = [:]
            for (state, count) in status.trialsByStatus { byStatus[state.rawValue] = count }
            let progress = DashboardState.RunProgress(
                database: path, sweeps: rows.sweeps, trials: byStatus, totalTrials: rows.totalTrials,
                epochsRecorded: rows.epochsRecorded, epochsPlanned: rows.epochsPlanned,
                epochsPerHour: status.epochsPerHour, etaSeconds: status.estimatedSecondsRemaining,
                etaIsUpperBound: status.estimateIsUpperBound, connectedWorkers: status.connectedWorkers)
            return DashboardState(readAt: ISO8601DateFormatter().string(from: now), run: progress, charts: rows.charts,
                                  trials: Array(matching.prefix(max(0, limit))), trialsMatching: matching.count,
                                  filter: filter, workers: workerRows)
        }
    }

    /// What a filter's words are looked for in: the trial's key, line, method and status, lowercased, one
    /// per line (a word never holds a line break, so none matches across two).
    static func searchText(_ trial: DashboardState.TrialRow) -> String {
        [trial.key, trial.condition, trial.method, trial.status].joined(separator: "\n").lowercased()
    }

    /// Reads the run's rows and makes what the state takes from them.
    private func runRows(_ db: Database) throws -> RunRows {
        rowReadCount += 1
        let snapshot = try RunSnapshotReader.read(db, path: path, answers: false, settings: settings)
        let recorded = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM epoch_metrics WHERE epoch > 0") ?? 0
        let refused = try RunStore.refusedTrials(db, limit: nil).trials
        let waiting = Dictionary(refused.map { ($0.trial, Self.waiting($0)) }, uniquingKeysWith: { first, _ in first })
        let aggregates = ConditionAggregate.all(in: snapshot)
        // Trials and workers are shown under their chart line: the condition, and what sets it apart under a grid axis.
        let lines = ConditionAggregate.lineNames(aggregates)
        let charts = ReportFigures.figures(aggregates).map {
            DashboardState.Chart(name: $0.fileName, title: $0.chart.title, svg: SVGChartWriter.svg($0.chart))
        }
        let trials = zip(snapshot.trials, snapshot.epochsByTrial()).map { trial, rows in
            let evaluated = rows.last { $0.accuracy != nil }
            return DashboardState.TrialRow(
                key: trial.key, condition: lines[trial.key] ?? trial.condition, method: trial.method, rank: trial.rank,
                learningRate: trial.learningRate, seed: trial.seed, status: trial.status, lastEpoch: trial.lastEpoch,
                epochs: trial.plannedEpochs, accuracy: evaluated?.accuracy, lastEvaluatedEpoch: evaluated?.epoch,
                loss: rows.last { $0.loss != nil }?.loss,
                decision: trial.stopping.map { "\($0.rule) rule at epoch \($0.epoch): \($0.reason)" },
                waiting: waiting[trial.key])
        }
        return RunRows(sweeps: snapshot.sweepNames, totalTrials: snapshot.trials.count, epochsRecorded: recorded,
                       epochsPlanned: snapshot.trials.map(\.plannedEpochs).reduce(0, +), charts: charts, trials: trials,
                       searchText: trials.map(Self.searchText),
                       indexByKey: Dictionary(trials.enumerated().map { ($1.key, $0) }, uniquingKeysWith: { first, _ in first }))
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
