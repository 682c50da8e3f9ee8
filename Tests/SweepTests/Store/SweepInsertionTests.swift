// Adding sweeps: idempotent by trial key, settings copied into their columns.
import Foundation
import GRDB
import Testing
@testable import Store

@Suite struct SweepInsertionTests {
    @Test func reAddingTheSameTrialsAddsNoneAndExtendingAddsOnlyTheNew() throws {
        let fixture = try StoreFixture()
        let first = [StoreSamples.trial("lora-r8", seed: 1), StoreSamples.trial("full", seed: 1)]
        let added = try fixture.addSweep(first)
        #expect(added.newTrials == 2 && added.existingTrials == 0)
        let again = try fixture.addSweep(first)
        #expect(again == AddedSweep(sweepID: added.sweepID, newTrials: 0, existingTrials: 2))
        let extended = try fixture.addSweep(first + [StoreSamples.trial("lora-r8", seed: 2)])
        #expect(extended.newTrials == 1 && extended.existingTrials == 2)
        #expect(try fixture.store.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM trials") } == 3)
    }

    @Test func settingsAreCopiedIntoQueryableColumns() throws {
        let fixture = try StoreFixture()
        try fixture.addSweep([StoreSamples.trial("lora-r8", seed: 7), StoreSamples.trial("full", seed: 7)])
        let rows = try fixture.store.read { db in
            try Row.fetchAll(db, sql: "SELECT method, rank, alpha, lr, epochs, seed, batch_size, status FROM trials ORDER BY method")
        }
        #expect(rows.map { $0["method"] as String } == ["full", "lora"])
        #expect(rows[0]["rank"] as Int? == nil)
        #expect(rows[1]["rank"] as Int? == 8 && rows[1]["alpha"] as Double? == 16)
        #expect(rows[1]["lr"] as Double == 0.001)
        #expect(rows.allSatisfy { $0["seed"] as Int == 7 && $0["epochs"] as Int == 3 && $0["status"] as String == "pending" })
        let viaJSON = try fixture.store.read { db in
            try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM trials WHERE json_extract(config, '$.training.method.kind') = 'lora' AND lr = 1e-3")
        }
        #expect(viaJSON == 1)
    }

    @Test func oneKeyWithTwoConfigurationsIsRefused() throws {
        let fixture = try StoreFixture()
        let trial = StoreSamples.trial("lora-r8", seed: 1)
        var changed = trial
        changed.config.training.epochs = 99
        #expect(throws: RunStoreError.conflictingTrial(key: trial.key, reason: "two different configurations")) {
            try fixture.addSweep([trial, changed])
        }
        try fixture.addSweep([trial])
        #expect(throws: RunStoreError.conflictingTrial(key: trial.key, reason: "two different configurations")) {
            try fixture.addSweep([changed])
        }
    }

    /// Renaming a condition keeps its trials' keys (docs/sweep-spec.md): submitting the renamed spec relabels
    /// them, where it was refused as "listed twice". Within one plan a key under two conditions is still refused.
    @Test func aRenamedConditionRelabelsItsTrials() throws {
        let fixture = try StoreFixture()
        let trials = [StoreSamples.trial("lora-r8", seed: 1), StoreSamples.trial("lora-r8", seed: 2), StoreSamples.trial("full", seed: 1)]
        let added = try fixture.addSweep(trials)
        let renamed = trials.map { trial in
            var trial = trial
            if trial.condition == "lora-r8" { trial.condition = "lora-rank-8" }
            return trial
        }
        #expect(try fixture.addSweep(renamed) == AddedSweep(sweepID: added.sweepID, newTrials: 0, existingTrials: 3))
        let conditions = try fixture.store.read { db in try String.fetchAll(db, sql: "SELECT condition FROM trials ORDER BY rowid") }
        #expect(conditions == ["lora-rank-8", "lora-rank-8", "full"])
        let events = try fixture.store.read { db in try String.fetchAll(db, sql: "SELECT detail FROM events WHERE kind = 'condition-renamed'") }
        #expect(events.count == 1 && events[0].hasSuffix("lora-r8 is now lora-rank-8"), "\(events)")
        var twice = renamed[2]
        twice.condition = "other"
        #expect(throws: RunStoreError.conflictingTrial(key: twice.key, reason: "conditions full and other")) {
            try fixture.addSweep(renamed + [twice])
        }
    }

    @Test func aSpecThatIsNotJSONIsRefused() throws {
        let fixture = try StoreFixture()
        #expect(throws: RunStoreError.self) {
            try fixture.store.addSweep(name: "broken", spec: Data("{name:".utf8), trials: [])
        }
    }
}
