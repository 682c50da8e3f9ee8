// RunStore sweeps: adding a sweep and its trials, idempotently.
import Foundation
import GRDB
import Trial

extension RunStore {
    /// Adds the sweep `name` with `trials`. Idempotent: keys already in the
    /// database are left as they are, so re-running `factsweep sweep` on the
    /// same (or an extended) spec adds only the new trials. A changed spec
    /// replaces the stored one (an event records it). A trial of this sweep
    /// listed under a renamed condition takes the new name (its key, its
    /// configuration and its results are the same; an event records it); a
    /// trial another sweep added first stays that sweep's, under its name.
    ///
    /// - Parameter retryLimit: how many lost attempts a new trial survives
    ///   before it fails.
    /// - Parameter stopping: the stopping rule of each condition that has one, kept with the sweep (and
    ///   replaced with its spec) so that a restarted coordinator applies the same rules.
    public func addSweep(name: String, spec: Data, trials: [SweepTrial], retryLimit: Int = 2,
                         stopping: [String: StoppingRule] = [:]) throws -> AddedSweep {
        let specText = try Self.validJSONText(spec, sweep: name)
        let stoppingText = try Self.encodeStopping(stopping)
        let rows = try trials.map { try TrialRow($0) }
        try Self.refuseConflicts(rows)
        let added = try write { transaction in try transaction.operation { db, now in
            let sweepID = try Self.upsertSweep(db, name: name, spec: specText, stopping: stoppingText, at: now)
            var added = AddedSweep(sweepID: sweepID, newTrials: 0, existingTrials: 0)
            // One statement each, prepared once, and the time formatted once: a 100,000-trial sweep spent
            // most of its insert preparing the same SQL again and formatting the same date.
            let lookup = try db.cachedStatement(sql: "SELECT sweep_id, condition, config FROM trials WHERE key = ?")
            let insert = try db.cachedStatement(sql: TrialRow.insertSQL)
            let rename = try db.cachedStatement(sql: "UPDATE trials SET condition = ?, updated_at = ? WHERE key = ?")
            let time = now.databaseValue
            var renamed: [String: String] = [:]
            for row in rows {
                if let existing = try Row.fetchOne(lookup, arguments: [row.key]) {
                    try row.refuseDifferences(config: existing["config"])
                    let condition: String = existing["condition"]
                    if condition != row.condition, existing["sweep_id"] as Int64 == sweepID {
                        try rename.execute(arguments: [row.condition, time, row.key])
                        renamed[condition] = row.condition
                    }
                    added.existingTrials += 1
                    continue
                }
                try row.insert(insert, sweepID: sweepID, retryLimit: retryLimit, at: time)
                added.newTrials += 1
            }
            if added.newTrials > 0 {
                try Self.logEvent(db, at: now, kind: "sweep-added", detail: "\(name): \(added.newTrials) new trials")
            }
            for (old, new) in renamed.sorted(by: { $0.key < $1.key }) {
                try Self.logEvent(db, at: now, kind: "condition-renamed", detail: "\(name): \(old) is now \(new)")
            }
            return added
        } }
        logger.info("sweep added", metadata: ["sweep": "\(name)", "new": "\(added.newTrials)",
                                              "existing": "\(added.existingTrials)"])
        return added
    }

    private static func validJSONText(_ spec: Data, sweep: String) throws -> String {
        do {
            _ = try JSONSerialization.jsonObject(with: spec, options: [.fragmentsAllowed])
        } catch {
            throw RunStoreError.invalidSpec(sweep: sweep, reason: error.localizedDescription)
        }
        return String(decoding: spec, as: UTF8.self)
    }

    /// The sweep's id, inserting it or replacing a changed spec.
    private static func upsertSweep(_ db: Database, name: String, spec: String, stopping: String?, at now: Date) throws -> Int64 {
        guard let row = try Row.fetchOne(db, sql: "SELECT id, spec, stopping FROM sweeps WHERE name = ?", arguments: [name]) else {
            try db.execute(sql: "INSERT INTO sweeps (name, spec, stopping, created_at) VALUES (?, ?, ?, ?)",
                           arguments: [name, spec, stopping, now])
            return db.lastInsertedRowID
        }
        let id: Int64 = row["id"]
        if row["spec"] as String != spec || row["stopping"] as String? != stopping {
            try db.execute(sql: "UPDATE sweeps SET spec = ?, stopping = ? WHERE id = ?", arguments: [spec, stopping, id])
            try logEvent(db, at: now, kind: "sweep-spec-replaced", detail: name)
        }
        return id
    }

    /// One key listed twice must mean one trial.
    private static func refuseConflicts(_ rows: [TrialRow]) throws {
        var seen: [String: TrialRow] = [:]
        for row in rows {
            if let earlier = seen[row.key] {
                try row.refuseDifferences(condition: earlier.condition, config: earlier.config)
            }
            seen[row.key] = row
        }
    }
}

/// A trial as inserted: its config as canonical JSON plus the settings that
/// users filter on, copied into their own indexed columns.
private struct TrialRow {
    var key: String
    var condition: String
    var config: String
    var settings: TrialConfig

    init(_ trial: SweepTrial) throws {
        key = trial.key
        condition = trial.condition
        config = String(decoding: try trial.canonicalConfig ?? trial.config.canonicalJSON(), as: UTF8.self)
        settings = trial.config
    }

    /// Within one plan a key must have one condition too; against a stored trial only the configuration
    /// must agree (a condition may have been renamed since).
    func refuseDifferences(condition otherCondition: String? = nil, config otherConfig: String) throws {
        if let otherCondition, otherCondition != condition {
            throw RunStoreError.conflictingTrial(key: key, reason: "conditions \(otherCondition) and \(condition)")
        }
        if otherConfig != config {
            throw RunStoreError.conflictingTrial(key: key, reason: "two different configurations")
        }
    }

    static let insertSQL = """
        INSERT INTO trials (key, sweep_id, condition, config, model, method, rank, alpha, lr, epochs, seed,
                            batch_size, retry_limit, created_at, updated_at, storage)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
        """

    /// Inserts the row with `statement` (`insertSQL`, prepared by the caller); `now` is the time as stored.
    func insert(_ statement: Statement, sweepID: Int64, retryLimit: Int, at now: DatabaseValue) throws {
        let training = settings.training
        let adapterRank = [.lora, .qlora].contains(training.method.kind)
        try statement.execute(arguments: [
            key, sweepID, condition, config, settings.model, training.method.kind.rawValue,
            adapterRank ? training.method.rank : nil,
            adapterRank ? decimal(training.method.alpha) : nil,
            decimal(training.learningRate), training.epochs, Int64(bitPattern: training.seed),
            training.batchSize, retryLimit, now, now,
            LinearStorage.training(training.method.kind, precision: training.productPrecision).rawValue,
        ])
    }
}

/// A Float as the decimal the user wrote (2e-4 stays 0.0002, not
/// 0.000199999995), so that `WHERE lr = 2e-4` finds it.
func decimal(_ value: Float) -> Double {
    Double("\(value)") ?? Double(value)
}
