// RunStore look-ups for the user's commands (`factsweep retry`, `cancel`):
// trials by key or key prefix, by status, and the worker holding a trial; and
// for the coordinator, which of some trials have not ended.
import Foundation
import GRDB
import Trial

extension RunTransaction {
    /// The keys of trials whose key is `keyOrPrefix` or starts with it (a key's first characters, as
    /// `factsweep status` shows them): one exact match wins over longer keys sharing the prefix.
    public func trialKeys(matching keyOrPrefix: String) throws -> [String] {
        if try String.fetchOne(db, sql: "SELECT key FROM trials WHERE key = ?", arguments: [keyOrPrefix]) != nil { return [keyOrPrefix] }
        // substr, not LIKE: a key's characters are never patterns.
        return try String.fetchAll(db, sql: "SELECT key FROM trials WHERE substr(key, 1, ?) = ? ORDER BY rowid",
                                   arguments: [keyOrPrefix.count, keyOrPrefix])
    }

    /// The keys of every trial in `status`, in insertion order.
    public func trialKeys(withStatus status: TrialStatus) throws -> [String] {
        try String.fetchAll(db, sql: "SELECT key FROM trials WHERE status = ? ORDER BY rowid", arguments: [status.rawValue])
    }

    /// The trials among `keys` that have not ended (pending, running, stale or paused).
    public func unfinishedTrials(among keys: Set<String>) throws -> Set<String> {
        guard !keys.isEmpty else { return [] }
        let unfinished = TrialStatus.allCases.filter { !$0.isTerminal }.map(\.rawValue)
        let request = SQLRequest<String>(literal: """
            SELECT key FROM trials WHERE key IN (SELECT value FROM json_each(\(RunStore.jsonList(keys)))) AND status IN \(unfinished)
            """, cached: true)
        return try Set(request.fetchAll(db))
    }

    /// The attempt holding a running or stale trial, and its worker; nil when none does.
    public func holder(of trialKey: String) throws -> (attempt: AttemptID, workerID: String)? {
        let row = try Row.fetchOne(db, sql: """
            SELECT a.attempt_id, a.worker_id FROM trials t JOIN attempts a ON a.attempt_id = t.current_attempt_id
            WHERE t.key = ? AND t.status IN ('running', 'stale')
            """, arguments: [trialKey])
        return row.map { ($0["attempt_id"], $0["worker_id"]) }
    }
}
