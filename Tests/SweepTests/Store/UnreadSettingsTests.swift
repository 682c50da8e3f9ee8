// A run database a newer factsweep filled: the unfinished trials whose stored
// configuration, and the sweeps whose stopping rules, have members this build
// does not read are named; this build's own, and finished ones, are not.
import Foundation
import GRDB
import Testing
@testable import Store
import Trial

@Suite struct UnreadSettingsTests {
    /// Stores `key`'s configuration as a newer build would, with `edit` applied to its JSON object.
    static func rewrite(_ fixture: StoreFixture, _ key: String, _ edit: (inout [String: Any]) -> Void) throws {
        try fixture.store.write { transaction in
            let stored = try #require(try String.fetchOne(transaction.db, sql: "SELECT config FROM trials WHERE key = ?", arguments: [key]))
            var object = try #require(try JSONSerialization.jsonObject(with: Data(stored.utf8)) as? [String: Any])
            edit(&object)
            let newer = String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), as: UTF8.self)
            try transaction.db.execute(sql: "UPDATE trials SET config = ? WHERE key = ?", arguments: [newer, key])
        }
    }

    @Test func unfinishedTrialsWithMembersThisBuildDoesNotReadAreNamed() throws {
        let fixture = try StoreFixture()
        try fixture.announce("w1")
        let trials = (1...4).map { StoreSamples.trial("lora-r8", seed: $0, epochs: 1) }
        try fixture.addSweep(trials)
        #expect(try fixture.store.trialsWithUnreadSettings().isEmpty, "this build's own configurations")
        // Trial 1 is done before the newer build's settings are put in: a done trial is not handed out again.
        let first = try #require(try fixture.store.claimNextTrial(for: "w1"))
        try fixture.recordEpochs(of: first, through: 1)
        _ = try fixture.store.finishTrial(first.key, attemptID: first.attemptID, result: .done)
        for key in [trials[0].key, trials[2].key] {
            try Self.rewrite(fixture, key) { object in
                var training = object["training"] as? [String: Any] ?? [:]
                training["gradientCheckpointing"] = true
                object["training"] = training
            }
        }
        try Self.rewrite(fixture, trials[3].key) { object in
            object["tokenizerRevision"] = "v2"
            object["calibration"] = NSNull()  // null asks for nothing
        }
        // Trial 2 gains only a null member: nothing this build would drop.
        try Self.rewrite(fixture, trials[1].key) { object in object["calibration"] = NSNull() }
        let found = try fixture.store.trialsWithUnreadSettings()
        #expect(found == [UnreadTrialSettings(trial: trials[2].key, settings: ["training.gradientCheckpointing"]),
                          UnreadTrialSettings(trial: trials[3].key, settings: ["tokenizerRevision"])], "\(found)")
        #expect(try fixture.store.trialsWithUnreadSettings(limit: 1).count == 1)
        // A failed trial is found too: `factsweep retry` reopens it through the running coordinator.
        let failing = try #require(try fixture.store.claimNextTrial(for: "w1"))
        #expect(failing.key == trials[1].key)
        _ = try fixture.store.finishTrial(failing.key, attemptID: failing.attemptID, result: .failed, reason: "boom")
        try Self.rewrite(fixture, trials[1].key) { object in object["tokenizerRevision"] = "v3" }
        #expect(try fixture.store.trialsWithUnreadSettings().map(\.trial) == [trials[1].key, trials[2].key, trials[3].key])
        // A configuration that does not decode is the database's fault, named.
        try fixture.store.write { try $0.db.execute(sql: #"UPDATE trials SET config = '{"model": 3}' WHERE key = ?"#, arguments: [trials[1].key]) }
        #expect {
            try fixture.store.trialsWithUnreadSettings()
        } throws: { error in
            guard case let .corruptRow(_, key, reason) = error as? RunStoreError else { return false }
            return key == trials[1].key && reason.contains("newer factsweep")
        }
    }

    /// The plan's canonical configurations spare the decoding only of stored ones equal to them: a trial
    /// the plan names whose stored configuration a newer build rewrote is still found.
    @Test func knownConfigurationsSpareOnlyTheirEqualStoredCopies() throws {
        let fixture = try StoreFixture()
        let trials = (1...3).map { StoreSamples.trial("lora-r8", seed: $0, epochs: 1) }
        try fixture.addSweep(trials)
        let known = Dictionary(uniqueKeysWithValues: try trials.map { ($0.key, try $0.config.canonicalJSON()) })
        #expect(try fixture.store.trialsWithUnreadSettings(known: known).isEmpty)
        try Self.rewrite(fixture, trials[1].key) { object in object["tokenizerRevision"] = "v2" }
        #expect(try fixture.store.trialsWithUnreadSettings(known: known)
                == [UnreadTrialSettings(trial: trials[1].key, settings: ["tokenizerRevision"])])
    }

    /// Stores sweep `name`'s stopping rules as a newer build would: the JSON text as given.
    static func storeStopping(_ fixture: StoreFixture, sweep name: String, _ text: String) throws {
        try fixture.store.write { try $0.db.execute(sql: "UPDATE sweeps SET stopping = ? WHERE name = ?", arguments: [text, name]) }
    }

    @Test func stoppingRulesWithMembersThisBuildDoesNotReadAreNamed() throws {
        let fixture = try StoreFixture()
        try fixture.announce("w1")
        let trial = StoreSamples.trial("lora-r8", seed: 1, epochs: 1)
        let rule = StoppingRule.target(accuracy: 0.9, evaluations: 2)
        try fixture.store.addSweep(name: "study", spec: Data(#"{"name":"study"}"#.utf8), trials: [trial], stopping: ["lora-r8": rule])
        #expect(try fixture.store.sweepsWithUnreadStopping().isEmpty, "this build's own rules")
        // A newer build's member of a rule this build knows, and a null member, which asks for nothing.
        try Self.storeStopping(fixture, sweep: "study",
                               #"{"lora-r8":{"accuracy":0.9,"evaluations":2,"min_epochs":3,"rule":"target","warmup":null}}"#)
        #expect(try fixture.store.sweepsWithUnreadStopping() == [UnreadStoppingSettings(sweep: "study", settings: ["lora-r8.min_epochs"])])
        // The sweep being submitted is left out: the submission replaces its rules with this build's.
        #expect(try fixture.store.sweepsWithUnreadStopping(besides: "study").isEmpty)
        #expect(try fixture.store.sweepsWithUnreadStopping(besides: "other").count == 1)
        // A failed trial keeps its sweep's rules in play (`factsweep retry` reopens it); a done one does not.
        let claimed = try #require(try fixture.store.claimNextTrial(for: "w1"))
        _ = try fixture.store.finishTrial(claimed.key, attemptID: claimed.attemptID, result: .failed, reason: "boom")
        #expect(try fixture.store.sweepsWithUnreadStopping().count == 1)
        try fixture.store.write { try $0.db.execute(sql: "UPDATE trials SET status = 'done' WHERE key = ?", arguments: [trial.key]) }
        #expect(try fixture.store.sweepsWithUnreadStopping().isEmpty, "no trial of the sweep can run again")
        try fixture.store.write { try $0.db.execute(sql: "UPDATE trials SET status = 'pending' WHERE key = ?", arguments: [trial.key]) }
        // Only the rules of conditions with a trial that may run again count: another condition's, all done, never apply.
        try Self.storeStopping(fixture, sweep: "study",
                               #"{"ended":{"accuracy":0.9,"evaluations":2,"min_epochs":3,"rule":"target"},"lora-r8":{"accuracy":0.9,"evaluations":2,"rule":"target"}}"#)
        #expect(try fixture.store.sweepsWithUnreadStopping().isEmpty)
        try Self.storeStopping(fixture, sweep: "study",
                               #"{"ended":{"accuracy":0.9,"evaluations":2,"min_epochs":3,"rule":"target"},"lora-r8":{"accuracy":0.9,"evaluations":2,"rule":"target","warmup":1}}"#)
        #expect(try fixture.store.sweepsWithUnreadStopping() == [UnreadStoppingSettings(sweep: "study", settings: ["lora-r8.warmup"])])
        // A rule this build does not know at all is the database's fault, named.
        try Self.storeStopping(fixture, sweep: "study", #"{"lora-r8":{"rule":"hyperband","brackets":3}}"#)
        #expect {
            try fixture.store.sweepsWithUnreadStopping()
        } throws: { error in
            guard case let .corruptRow(table, key, reason) = error as? RunStoreError else { return false }
            return table == "sweeps" && key == "study" && reason.contains("newer factsweep")
        }
    }
}

