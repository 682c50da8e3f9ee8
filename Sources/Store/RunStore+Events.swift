// RunStore events: the audit trail — what happened to which trial and worker, when.
import Foundation
import GRDB

/// One row of `events`.
public struct StoredEvent: Sendable, Equatable {
    public var id: Int64
    public var at: Date
    public var kind: String
    public var trialKey: String?
    public var workerID: String?
    public var detail: String?
}

extension RunTransaction {
    /// Appends an event of the coordinator's own (the store logs its state changes itself).
    public func appendEvent(kind: String, trialKey: String? = nil, workerID: String? = nil, detail: String? = nil) throws {
        try operation { db, now in
            try RunStore.logEvent(db, at: now, kind: kind, trialKey: trialKey, workerID: workerID, detail: detail)
        }
    }
}

extension RunStore {
    /// `RunTransaction.appendEvent` as one transaction.
    public func appendEvent(kind: String, trialKey: String? = nil, workerID: String? = nil, detail: String? = nil) throws {
        try write { try $0.appendEvent(kind: kind, trialKey: trialKey, workerID: workerID, detail: detail) }
    }

    /// The newest events first, of one trial or of all.
    public func recentEvents(limit: Int = 100, trialKey: String? = nil) throws -> [StoredEvent] {
        try read { db in
            let rows = try Row.fetchAll(db, sql: """
                SELECT id, at, kind, trial_key, worker_id, detail FROM events
                WHERE ?1 IS NULL OR trial_key = ?1 ORDER BY id DESC LIMIT ?2
                """, arguments: [trialKey, limit])
            return rows.map {
                StoredEvent(id: $0["id"], at: $0["at"], kind: $0["kind"], trialKey: $0["trial_key"],
                            workerID: $0["worker_id"], detail: $0["detail"])
            }
        }
    }

    /// Appends an event inside the caller's transaction.
    static func logEvent(_ db: Database, at now: Date, kind: String, trialKey: String? = nil, workerID: String? = nil,
                         detail: String? = nil) throws {
        try db.executeCached(sql: "INSERT INTO events (at, kind, trial_key, worker_id, detail) VALUES (?, ?, ?, ?, ?)",
                             arguments: [now, kind, trialKey, workerID, detail])
    }
}
