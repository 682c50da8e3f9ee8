// RunStore unread settings: the trials a coordinator would hand out whose
// stored configuration has members this build does not read. JSONDecoder skips
// a member it has no property for, so a coordinator built before a setting,
// opening a run database a newer one filled, would assign those trials without
// the setting, and any worker would run them so: results stored under a
// configuration nobody computed. The same holds for a sweep's stopping rules
// (`sweeps.stopping`), which the coordinator itself applies. The coordinator
// refuses to serve such a run.
import Foundation
import GRDB
import Trial

/// A trial that may still be handed out whose configuration holds members this build does not read.
public struct UnreadTrialSettings: Sendable, Equatable {
    public var trial: String
    /// Paths such as `training.precision`, sorted.
    public var settings: [String]
}

/// A sweep with trials that may still be handed out whose stored stopping rules hold members this build does not read.
public struct UnreadStoppingSettings: Sendable, Equatable {
    public var sweep: String
    /// Paths such as `lora.min_epochs` (the condition, then the rule's member), sorted.
    public var settings: [String]
}

extension RunStore {
    /// The statuses a trial can be handed out from, now or later: the unfinished ones, and `failed` and
    /// `cancelled`, which `factsweep retry` reopens (through the running coordinator, unchecked).
    static let assignableStatuses: [String] = TrialStatus.allCases
        .filter { !$0.isTerminal || $0 == .failed || $0 == .cancelled }.map(\.rawValue)

    /// Up to `limit` trials that may still be handed out (pending, running, stale, paused, and the failed
    /// or cancelled ones a retry reopens), in insertion order, whose stored configuration has members this
    /// build's `TrialConfig` does not read. A configuration that does not decode is a `corruptRow` that
    /// says a newer factsweep may have written it (a new value of a setting this build knows, a fourth
    /// method, reads so).
    ///
    /// A configuration stored by this build reads back to the same canonical bytes, so most trials cost
    /// one decode and one encode; only the others are compared member by member. `known` holds canonical
    /// configurations this build made, by trial key (the plan being submitted): a stored configuration
    /// equal to its trial's there is this build's encoding, which holds only members it reads, and costs
    /// a comparison alone.
    public func trialsWithUnreadSettings(limit: Int = 3, known: [String: Data] = [:]) throws -> [UnreadTrialSettings] {
        try read { db in
            var found: [UnreadTrialSettings] = []
            let rows = try Row.fetchCursor(db, SQLRequest(literal: "SELECT key, config FROM trials WHERE status IN \(Self.assignableStatuses) ORDER BY rowid"))
            while found.count < limit, let row = try rows.next() {
                let key: String = row["key"]
                let stored = Data((row["config"] as String).utf8)
                if known[key] == stored { continue }
                let config: TrialConfig
                do {
                    config = try JSONDecoder().decode(TrialConfig.self, from: stored)
                } catch {
                    throw RunStoreError.corruptRow(table: "trials", key: key,
                                                   reason: "config does not decode in this build (a newer factsweep may have written it): \(error)")
                }
                if try config.canonicalJSON() == stored { continue }
                let settings = try UnknownFields.paths(in: stored, decoded: config, encoder: JSONEncoder())
                if !settings.isEmpty { found.append(UnreadTrialSettings(trial: key, settings: settings)) }
            }
            return found
        }
    }

    /// The sweeps, in the order they were added, whose stored stopping rules have members this build's
    /// `StoppingRule` does not read in the rules of conditions that have trials that may still be handed out
    /// (the statuses of `trialsWithUnreadSettings`): this build's coordinator would apply those rules
    /// without the members. (The rules of a condition none of whose trials can run again never apply.)
    /// `besides` is left out: the sweep being submitted, whose rules the submission replaces with the ones
    /// this build read from its spec. Rules that do not decode at all (a rule this build does not know)
    /// are a `corruptRow` that says a newer factsweep may have written them.
    public func sweepsWithUnreadStopping(besides submitted: String? = nil) throws -> [UnreadStoppingSettings] {
        try read { db in
            // Each sweep with its conditions that have a trial that may still run: only their rules can apply.
            let rows = try Row.fetchAll(db, SQLRequest(literal: """
                SELECT s.name, s.stopping, json_group_array(DISTINCT t.condition) AS conditions
                FROM sweeps s JOIN trials t ON t.sweep_id = s.id
                WHERE s.stopping IS NOT NULL AND s.name IS NOT \(submitted) AND t.status IN \(Self.assignableStatuses)
                GROUP BY s.id ORDER BY s.id
                """))
            return try rows.compactMap { row -> UnreadStoppingSettings? in
                let name: String = row["name"], stored: String = row["stopping"]
                let understood = try Self.encodeStopping(try Self.decodeStopping(stored, sweep: name)) ?? "{}"
                if understood == stored { return nil }
                let decoder = JSONDecoder()
                let live = Set(try decoder.decode([String].self, from: Data((row["conditions"] as String).utf8)))
                func liveRules(_ text: String) throws -> JSONValue {
                    guard case let .object(rules) = try decoder.decode(JSONValue.self, from: Data(text.utf8)) else { return .object([:]) }
                    return .object(rules.filter { live.contains($0.key) })
                }
                let settings = UnknownFields.paths(received: try liveRules(stored), understood: try liveRules(understood))
                return settings.isEmpty ? nil : UnreadStoppingSettings(sweep: name, settings: settings)
            }
        }
    }
}
