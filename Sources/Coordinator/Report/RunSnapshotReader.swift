// RunSnapshotReader: opens a run database read-only (safe while the
// coordinator writes: WAL mode) and reads a RunSnapshot from it.
import Foundation
import GRDB
import Logging

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
        try checkIsRunDatabase(path)
        var configuration = Configuration()
        configuration.readonly = true
        // The coordinator holds the write lock only briefly (checkpoints).
        configuration.busyMode = .timeout(10)
        do {
            let queue = try DatabaseQueue(path: path, configuration: configuration)
            let snapshot = try queue.read { db in try readSnapshot(db, path: path) }
            logger.debug("read run database", metadata: [
                "path": "\(path)", "trials": "\(snapshot.trials.count)", "epochs": "\(snapshot.epochs.count)",
            ])
            return snapshot
        } catch let error as DatabaseError {
            throw ReportError.cannotRead(path: path, reason: error.message ?? "\(error.resultCode)")
        }
    }

    private static let sqliteHeader = Data("SQLite format 3\u{0}".utf8)

    /// Checks the file's header and application id before anything else reads it.
    private static func checkIsRunDatabase(_ path: String) throws {
        guard FileManager.default.fileExists(atPath: path) else { throw ReportError.missingDatabase(path: path) }
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw ReportError.cannotRead(path: path, reason: "it cannot be opened for reading")
        }
        let header = (try? handle.read(upToCount: sqliteHeader.count)) ?? nil
        try? handle.close()
        guard let header, header == sqliteHeader else {
            throw ReportError.notARunDatabase(path: path, reason: header?.isEmpty ?? true ? "an empty file" : "not an SQLite file")
        }
        var configuration = Configuration()
        configuration.readonly = true
        let (applicationID, migrated): (Int32, Bool)
        do {
            (applicationID, migrated) = try DatabaseQueue(path: path, configuration: configuration).read { db in
                let id = try Int32.fetchOne(db, sql: "PRAGMA application_id") ?? 0
                let migrated = try db.tableExists("grdb_migrations")
                    && (try Bool.fetchOne(db, sql: "SELECT EXISTS (SELECT 1 FROM grdb_migrations WHERE identifier = 'v1-run-database')") ?? false)
                return (id, migrated)
            }
        } catch let error as DatabaseError {
            throw ReportError.notARunDatabase(path: path, reason: error.message ?? "\(error.resultCode)")
        }
        guard applicationID == RunSchema.applicationID else {
            throw ReportError.notARunDatabase(path: path, reason: "SQLite application_id \(applicationID), not FactSweep's")
        }
        guard migrated else { throw ReportError.notARunDatabase(path: path, reason: "its tables were never created") }
    }

    private static func readSnapshot(_ db: Database, path: String) throws -> RunSnapshot {
        let storesSummaries = try db.columns(in: "trials").contains { $0.name == "summary" }
        let sweeps = try String.fetchAll(db, sql: "SELECT name FROM sweeps ORDER BY id")
        let trials = try Row.fetchAll(db, sql: """
            SELECT key, condition, method, rank, alpha, lr, seed, epochs, status, last_epoch, model\(storesSummaries ? ", summary" : "")
            FROM trials ORDER BY rowid
            """).map { row in
            ReportTrial(key: row["key"], condition: row["condition"], method: row["method"], rank: row["rank"],
                        alpha: row["alpha"], learningRate: row["lr"], seed: row["seed"], plannedEpochs: row["epochs"],
                        status: row["status"], lastEpoch: row["last_epoch"],
                        summary: storesSummaries ? decodeSummary(row["summary"]) : nil, model: row["model"])
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
        let answers = try Row.fetchAll(db, sql: """
            SELECT q.trial_key, q.epoch, q.question, q.paraphrase, q.reference, q.answer, q.similarity
            FROM question_outputs q
            JOIN (SELECT trial_key, MAX(epoch) AS epoch FROM question_outputs GROUP BY trial_key) last
                ON last.trial_key = q.trial_key AND last.epoch = q.epoch
            ORDER BY q.trial_key, q.id
            """).map { row in
            ReportAnswer(trialKey: row["trial_key"], epoch: row["epoch"], question: row["question"],
                         paraphrase: row["paraphrase"], reference: row["reference"], answer: row["answer"],
                         similarity: row["similarity"])
        }
        return RunSnapshot(path: path, sweepNames: sweeps, trials: trials, epochs: epochs, lastAnswers: answers,
                           storesSummaries: storesSummaries)
    }

    /// A summary that does not decode is shown as absent rather than failing
    /// the whole report: it is informational.
    private static func decodeSummary(_ text: String?) -> TrialSummaryFacts? {
        guard let text else { return nil }
        return try? JSONDecoder().decode(TrialSummaryFacts.self, from: Data(text.utf8))
    }
}
