// RunStore refusals: the pending trials whose latest attempt a worker refused
// for settings its build does not read (protocol 4's `unread_settings`), for
// `factsweep status` and the dashboard. Such a trial waits for a connected
// worker that has not refused it; without this, nothing on the screen says why
// it waits.
import Foundation
import GRDB

/// A pending trial whose latest attempt was a worker's refusal for settings its build does not read.
public struct RefusedTrial: Sendable, Equatable {
    public var trial: String
    /// The workers that refused it so, in the order of their first refusal (the coordinator offers the trial
    /// to a refuser again after it restarts or the refuser starts a new session).
    public var workers: [String]
    /// The latest refusal's reason, which names the settings.
    public var reason: String
}

extension RunStore {
    /// Up to `limit` pending trials, in insertion order, whose latest attempt a worker refused at no cost
    /// (`attempts.refused`, from `v10-attempt-refused` on), and how many there are in all. A trial whose
    /// refusals counted (every connected worker had refused it) is not among them: it fails at its retry limit.
    public func refusedTrials(limit: Int = 5) throws -> (trials: [RefusedTrial], total: Int) {
        try read { try Self.refusedTrials($0, limit: limit) }
    }

    /// `refusedTrials(limit:)` inside a read of the caller's (the dashboard's read-only connection);
    /// `limit` nil lists them all, as the dashboard's table of every trial does. Two queries whatever
    /// the count: the trials, then their refusers. A database from before `v10-attempt-refused` (the
    /// dashboard reads such files without migrating them) records no refusals: none.
    public static func refusedTrials(_ db: Database, limit: Int?) throws -> (trials: [RefusedTrial], total: Int) {
        guard try RunSchema.has(db, column: "refused", in: "attempts") else { return ([], 0) }
        let rows = try Row.fetchCursor(db, sql: """
            SELECT t.key, a.reason FROM trials t
            JOIN attempts a ON a.attempt_id = (SELECT MAX(attempt_id) FROM attempts WHERE trial_key = t.key)
            WHERE t.status = 'pending' AND a.refused = 1
            ORDER BY t.rowid
            """)
        var listed: [(key: String, reason: String)] = [], total = 0
        while let row = try rows.next() {
            total += 1
            if limit.map({ listed.count < $0 }) ?? true { listed.append((row["key"], row["reason"] ?? "")) }
        }
        guard !listed.isEmpty else { return ([], total) }
        var refusers: [String: [String]] = [:]
        for row in try Row.fetchAll(db, sql: """
            SELECT trial_key, worker_id FROM attempts
            WHERE refused = 1 AND trial_key IN (SELECT value FROM json_each(?))
            GROUP BY trial_key, worker_id ORDER BY MIN(attempt_id)
            """, arguments: [jsonList(Set(listed.map(\.key)))]) {
            refusers[row["trial_key"], default: []].append(row["worker_id"])
        }
        return (listed.map { RefusedTrial(trial: $0.key, workers: refusers[$0.key] ?? [], reason: $0.reason) }, total)
    }
}
