// A run database a newer factsweep filled: the unfinished trials whose stored
// configuration has members this build does not read are named; this build's
// own trials, and finished ones, are not.
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
}
