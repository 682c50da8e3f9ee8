// RunSnapshotReader: opens a run database read-only (safe while the
// coordinator writes: WAL mode) and reads a RunSnapshot from it.
import Foundation
import GRDB
import Logging
import Store
import Trial

/// Reads run databases for reports. Never writes: the connection is
/// read-only, so a report cannot disturb a running sweep.
public enum RunSnapshotReader {
    /// The run database of `location`: the file itself, or `run.db` inside
    /// a run directory.
    public static func databasePath(for location: String) -> String {
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: location, isDirectory: &isDirectory), isDirectory.boolValue {
            return (location as NSString).appendingPathComponent("run.db")
        }
        return location
    }

    /// Reads the snapshot of the run database at `path`, refusing (with the
    /// path in the message) a missing file or one that is not a run database.
    public static func read(path: String, logger: Logger) throws -> RunSnapshot {
        let queue = try openReadOnly(path: path)
        do {
            let snapshot = try queue.read { db in try readSnapshot(db, path: path) }
            logger.debug("read run database", metadata: [
                "path": "\(path)", "trials": "\(snapshot.trials.count)", "epochs": "\(snapshot.epochs.count)",
            ])
            return snapshot
        } catch let error as DatabaseError {
            throw ReportError.cannotRead(path: path, reason: error.message ?? "\(error.resultCode)")
        }
    }

    /// A read-only connection to the run database at `path` (refused, naming
    /// the path, when missing or not a run database): whoever holds it can
    /// never write, so it cannot disturb the coordinator.
    public static func openReadOnly(path: String) throws -> DatabaseQueue {
        try checkIsRunDatabase(path)
        var configuration = Configuration()
        configuration.readonly = true
        // The coordinator holds the write lock only briefly (checkpoints).
        configuration.busyMode = .timeout(10)
        do {
            return try DatabaseQueue(path: path, configuration: configuration)
        } catch let error as DatabaseError {
            throw ReportError.cannotRead(path: path, reason: error.message ?? "\(error.resultCode)")
        }
    }

    /// Refuses, naming the path, a file that is not a run database with tables to read (the store's
    /// identity check, worded for a report).
    private static func checkIsRunDatabase(_ path: String) throws {
        guard FileManager.default.fileExists(atPath: path) else { throw ReportError.missingDatabase(path: path) }
        switch RunDatabaseIdentity.check(path: path) {
        case .runDatabase(tablesCreated: true):
            return
        case .runDatabase(tablesCreated: false):
            throw ReportError.notARunDatabase(path: path, reason: "its tables were never created")
        case let .blank(reason), let .other(reason):
            throw ReportError.notARunDatabase(path: path, reason: reason)
        case let .unreadable(reason):
            throw ReportError.cannotRead(path: path, reason: reason)
        }
    }

    /// The snapshot through a connection the caller opened read-only (the live
    /// dashboard keeps one open); `path` only names the run in the snapshot.
    /// Without `answers` the last evaluation's answers are not read (`lastAnswers`
    /// empty): the dashboard, which reads a snapshot at every poll, shows them
    /// only per trial, on request. With `settings`, trials' settings are
    /// decoded once per trial across reads (`TrialSettingsCache`).
    public static func read(_ db: Database, path: String, answers: Bool = true, settings: TrialSettingsCache? = nil) throws -> RunSnapshot {
        try readSnapshot(db, path: path, answers: answers, settingsCache: settings)
    }

    private static func readSnapshot(
        _ db: Database, path: String, answers readsAnswers: Bool = true, settingsCache: TrialSettingsCache? = nil
    ) throws -> RunSnapshot {
        let storesSummaries = try RunSchema.has(db, column: "summary", in: "trials")
        let sweeps = try String.fetchAll(db, sql: "SELECT name FROM sweeps ORDER BY id")
        let decisions = try RunStore.stoppingDecisions(db)
        // Rows are read through cursors, their columns by position in the SELECT: at 100,000 trials of 10
        // epochs, looking each column up by name and copying each row took 20% of a live dashboard's poll.
        var trials: [ReportTrial] = []
        let trialRows = try Row.fetchCursor(db, sql: """
            SELECT key, condition, method, rank, alpha, lr, seed, epochs, status, last_epoch, model, config\(storesSummaries ? ", summary" : "")
            FROM trials ORDER BY rowid
            """)
        while let row = try trialRows.next() {
            let key: String = row[0]
            let settings = settingsCache.map { $0.settings(key: key) { row[11] } } ?? (row[11] as String?).flatMap(TrialSettings.init(configJSON:))
            trials.append(ReportTrial(key: key, condition: row[1], method: row[2], rank: row[3], alpha: row[4], learningRate: row[5],
                                      seed: row[6], plannedEpochs: row[7], status: row[8], lastEpoch: row[9],
                                      summary: storesSummaries ? decodeSummary(row[12]) : nil, model: row[10],
                                      stopping: decisions[key], settings: settings))
        }
        var epochs: [ReportEpoch] = []
        let epochRows = try Row.fetchCursor(db, sql: """
            SELECT e.trial_key, e.epoch, e.loss, e.train_seconds, e.epoch_seconds, e.accuracy, e.accuracy_at_threshold,
                   e.key_match, e.perplexity
            FROM epoch_metrics e JOIN trials t ON t.key = e.trial_key
            ORDER BY t.rowid, e.epoch
            """)
        // One String per trial, shared by its epochs, rather than one per row.
        var lastKey = "", lastKeyBytes = Data()
        while let row = try epochRows.next() {
            if try !row.withUnsafeData(atIndex: 0, { $0 == lastKeyBytes }) {
                lastKey = row[0]
                lastKeyBytes = Data(lastKey.utf8)
            }
            let key = lastKey
            epochs.append(ReportEpoch(trialKey: key, epoch: row[1], loss: row[2], trainSeconds: row[3], epochSeconds: row[4],
                                      accuracy: row[5], accuracyAtThreshold: row[6], keyMatch: row[7], perplexity: row[8]))
        }
        let answers = !readsAnswers ? [] : try Row.fetchAll(db, sql: """
            SELECT q.trial_key, q.epoch, q.question, q.paraphrase, q.reference, q.answer, q.similarity, q.key_match
            FROM question_outputs q
            JOIN (SELECT trial_key, MAX(epoch) AS epoch FROM question_outputs GROUP BY trial_key) last
                ON last.trial_key = q.trial_key AND last.epoch = q.epoch
            ORDER BY q.trial_key, q.id
            """).map { row in
            ReportAnswer(trialKey: row["trial_key"], epoch: row["epoch"], result: QuestionResult(
                question: row["question"], paraphrase: row["paraphrase"], reference: row["reference"],
                answer: row["answer"], similarity: Float(row["similarity"] as Double), keyMatch: row["key_match"]))
        }
        return RunSnapshot(path: path, sweepNames: sweeps, trials: trials, epochs: epochs, lastAnswers: answers,
                           storesSummaries: storesSummaries)
    }

    /// A summary that does not decode is shown as absent rather than failing
    /// the whole report: it is informational.
    private static func decodeSummary(_ text: String?) -> TrialSummary? {
        guard let text else { return nil }
        return try? TrialJSON.decoder().decode(TrialSummary.self, from: Data(text.utf8))
    }
}
