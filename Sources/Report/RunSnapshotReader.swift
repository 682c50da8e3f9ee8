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
    /// only per trial, on request.
    public static func read(_ db: Database, path: String, answers: Bool = true) throws -> RunSnapshot {
        try readSnapshot(db, path: path, answers: answers)
    }

    private static func readSnapshot(_ db: Database, path: String, answers readsAnswers: Bool = true) throws -> RunSnapshot {
        let storesSummaries = try RunSchema.has(db, column: "summary", in: "trials")
        let sweeps = try String.fetchAll(db, sql: "SELECT name FROM sweeps ORDER BY id")
        let decisions = try RunStore.stoppingDecisions(db)
        let trials = try Row.fetchAll(db, sql: """
            SELECT key, condition, method, rank, alpha, lr, seed, epochs, status, last_epoch, model, config\(storesSummaries ? ", summary" : "")
            FROM trials ORDER BY rowid
            """).map { row in
            ReportTrial(key: row["key"], condition: row["condition"], method: row["method"], rank: row["rank"],
                        alpha: row["alpha"], learningRate: row["lr"], seed: row["seed"], plannedEpochs: row["epochs"],
                        status: row["status"], lastEpoch: row["last_epoch"],
                        summary: storesSummaries ? decodeSummary(row["summary"]) : nil, model: row["model"],
                        stopping: decisions[row["key"]], settings: (row["config"] as String?).flatMap(TrialSettings.init(configJSON:)))
        }
        let epochs = try Row.fetchAll(db, sql: """
            SELECT e.trial_key, e.epoch, e.loss, e.train_seconds, e.epoch_seconds, e.accuracy, e.accuracy_at_threshold,
                   e.key_match, e.perplexity
            FROM epoch_metrics e JOIN trials t ON t.key = e.trial_key
            ORDER BY t.rowid, e.epoch
            """).map { row in
            ReportEpoch(trialKey: row["trial_key"], epoch: row["epoch"], loss: row["loss"], trainSeconds: row["train_seconds"],
                        epochSeconds: row["epoch_seconds"], accuracy: row["accuracy"],
                        accuracyAtThreshold: row["accuracy_at_threshold"], keyMatch: row["key_match"],
                        perplexity: row["perplexity"])
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
