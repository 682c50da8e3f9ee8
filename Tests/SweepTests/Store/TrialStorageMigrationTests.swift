// Migration v11-trial-storage on a database written before it: every trial's
// storage filled from its method and precision, and the claim order's index
// rebuilt with it.
import Foundation
import GRDB
import Testing
@testable import Store
import Trial

@Suite struct TrialStorageMigrationTests {
    /// Every method in both precisions, plus a configuration that names no precision (planned before the
    /// precision axis existed): f32.
    private static func trials() -> [SweepTrial] {
        var trials: [SweepTrial] = []
        for kind in MethodKind.allCases {
            for precision in Precision.allCases {
                var trial = StoreSamples.trial(kind.rawValue, seed: 1)
                trial.config.training.precision = precision
                trial.key += "-\(precision.rawValue)"
                trials.append(trial)
            }
        }
        var unstated = StoreSamples.trial("qlora", seed: 2)
        unstated.config.training.precision = nil
        return trials + [unstated]
    }

    /// Takes the file back to the schema before v11 (the column and its index as they were, the migration
    /// not recorded), with every trial's storage left as the wrong default before.
    private static func undoStorageMigration(_ path: String) throws {
        let queue = try DatabaseQueue(path: path)
        try queue.write { db in
            try db.execute(sql: """
                UPDATE trials SET storage = 'float32';
                DROP INDEX trials_claim_order;
                ALTER TABLE trials DROP COLUMN storage;
                CREATE INDEX trials_claim_order ON trials(status, model, last_epoch, sweep_id, condition);
                DELETE FROM grdb_migrations WHERE identifier = 'v11-trial-storage';
                """)
        }
    }

    @Test func anOlderDatabasesTrialsGetTheirStorages() throws {
        let fixture = try StoreFixture()
        try fixture.addSweep(Self.trials())
        try Self.undoStorageMigration(fixture.path)
        let before = try DatabaseQueue(path: fixture.path).read { try $0.columns(in: "trials").map(\.name) }
        #expect(!before.contains("storage"))

        try fixture.reopen()
        let storages = try fixture.store.read { db in
            try Row.fetchAll(db, sql: "SELECT key, storage FROM trials").map { ($0["key"] as String, $0["storage"] as String) }
        }
        #expect(Dictionary(uniqueKeysWithValues: storages) == [
            "full-smollm2-s1-f32": "float32", "full-smollm2-s1-bf16": "float32",
            "lora-smollm2-s1-f32": "float32", "lora-smollm2-s1-bf16": "bf16",
            "qlora-smollm2-s1-f32": "nf4", "qlora-smollm2-s1-bf16": "nf4", "qlora-smollm2-s2": "nf4",
            "ia3-smollm2-s1-f32": "float32", "ia3-smollm2-s1-bf16": "bf16",
        ])
        // What the workers insert from now on agrees with what the migration filled in.
        for trial in Self.trials() {
            let expected = LinearStorage.training(trial.config.training.method.kind, precision: trial.config.training.productPrecision)
            #expect(storages.first { $0.0 == trial.key }?.1 == expected.rawValue, "\(trial.key)")
        }
        let indexed = try fixture.store.read { try String.fetchAll($0, sql: "SELECT name FROM pragma_index_info('trials_claim_order')") }
        #expect(indexed == ["status", "model", "storage", "last_epoch", "sweep_id", "condition"])
        try fixture.announce("w1")
        let claimed = try fixture.store.claimNextTrial(for: "w1", preferring: ["models/smollm2"],
                                                       preferringStorages: [(model: "models/smollm2", storage: .bf16)])
        #expect(claimed?.key == "lora-smollm2-s1-bf16")
    }

    /// The column's CHECK names every storage a worker loads (a new one needs a migration that widens it)
    /// and nothing else.
    @Test func theColumnTakesEveryStorageAndNothingElse() throws {
        let fixture = try StoreFixture()
        try fixture.addSweep([StoreSamples.trial("lora", seed: 1)])
        let queue = try DatabaseQueue(path: fixture.path)
        for storage in LinearStorage.allCases {
            try queue.write { try $0.execute(sql: "UPDATE trials SET storage = ?", arguments: [storage.rawValue]) }
        }
        #expect(throws: DatabaseError.self) {
            try queue.write { try $0.execute(sql: "UPDATE trials SET storage = 'f16'") }
        }
    }
}
