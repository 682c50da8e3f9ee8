// RunStore unread settings: the trials a coordinator would hand out whose
// stored configuration has members this build does not read. JSONDecoder skips
// a member it has no property for, so a coordinator built before a setting,
// opening a run database a newer one filled, would assign those trials without
// the setting, and any worker would run them so: results stored under a
// configuration nobody computed. The coordinator refuses to serve such a run.
import Foundation
import GRDB
import Trial

/// An unfinished trial whose configuration holds members this build does not read.
public struct UnreadTrialSettings: Sendable, Equatable {
    public var trial: String
    /// Paths such as `training.precision`, sorted.
    public var settings: [String]
}

extension RunStore {
    /// Up to `limit` unfinished trials (pending, running, stale or paused), in insertion order, whose stored
    /// configuration has members this build's `TrialConfig` does not read. Finished trials are left out:
    /// nothing hands them out again (`factsweep retry` reopens one through a coordinator, which checks
    /// again when it starts). A configuration that does not decode is a `corruptRow`.
    ///
    /// A configuration stored by this build reads back to the same canonical bytes, so most trials cost
    /// one decode and one encode; only the others are compared member by member.
    public func trialsWithUnreadSettings(limit: Int = 3) throws -> [UnreadTrialSettings] {
        let unfinished = TrialStatus.allCases.filter { !$0.isTerminal }.map(\.rawValue)
        return try read { db in
            var found: [UnreadTrialSettings] = []
            let rows = try Row.fetchCursor(db, sql: "SELECT key, config FROM trials WHERE status IN (\(databaseQuestionMarks(count: unfinished.count))) ORDER BY rowid",
                                           arguments: StatementArguments(unfinished))
            while found.count < limit, let row = try rows.next() {
                let key: String = row["key"]
                let stored = Data((row["config"] as String).utf8)
                let config: TrialConfig
                do {
                    config = try JSONDecoder().decode(TrialConfig.self, from: stored)
                } catch {
                    throw RunStoreError.corruptRow(table: "trials", key: key, reason: "config: \(error)")
                }
                if try config.canonicalJSON() == stored { continue }
                let settings = try UnknownFields.paths(in: stored, decoded: config, encoder: JSONEncoder())
                if !settings.isEmpty { found.append(UnreadTrialSettings(trial: key, settings: settings)) }
            }
            return found
        }
    }
}
