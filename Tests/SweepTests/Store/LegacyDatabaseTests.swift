// A run database written before attempt ids became integers (Fixtures/,
// written by the code of that time) is still read by `report` as it is, and
// by the store — `status` and a resumed sweep — after migration v4.
import Foundation
import GRDB
import Logging
import Testing
import TestSupport
@testable import Dashboard
@testable import Report
@testable import Store
import Trial

@Suite struct LegacyDatabaseTests {
    /// The committed fixture's trials, as the README beside it describes them.
    private static let done = ["lora-r8-smollm2-s1", "full-smollm2-s1"]
    private static let running = "lora-r8-smollm2-s2", failed = "full-smollm2-s2", pending = "lora-r8-smollm2-s3"

    /// A copy of the fixture in a temporary folder (the committed file is never migrated), which lives as
    /// long as the folder.
    private func copyOfFixture() throws -> (TemporaryDirectory, String) {
        let folder = try TemporaryDirectory()
        let source = TestPaths.repositoryRoot.appendingPathComponent("Tests/SweepTests/Fixtures/run-before-integer-attempt-ids.db")
        let copy = folder.file("run.db")
        try FileManager.default.copyItem(at: source, to: copy)
        return (folder, copy.path)
    }

    /// The declared type and the stored types of a column.
    private func types(_ db: Database, _ table: String, _ column: String) throws -> (String?, [String]) {
        let declared = try db.columns(in: table).first { $0.name == column }?.type
        let stored = try String.fetchAll(db, sql: "SELECT DISTINCT typeof(\(column)) FROM \(table) WHERE \(column) IS NOT NULL")
        return (declared, stored)
    }

    @Test func theFixtureHoldsTextAttemptIDs() throws {
        let (folder, path) = try copyOfFixture()
        defer { withExtendedLifetime(folder) {} }
        let stored = try DatabaseQueue(path: path).read { db in
            try (types(db, "attempts", "attempt_id"), types(db, "trials", "current_attempt_id"), types(db, "epoch_metrics", "attempt_id"),
                 String.fetchAll(db, sql: "SELECT identifier FROM grdb_migrations"))
        }
        #expect(stored.0 == ("TEXT", ["text"]) && stored.1 == ("TEXT", ["text"]) && stored.2 == ("TEXT", ["text"]))
        #expect(stored.3 == ["v1-run-database", "v2-trial-summary", "v3-claim-indexes"])
    }

    @Test func theReportReadsItBeforeAndAfterTheMigration() throws {
        let (folder, path) = try copyOfFixture()
        defer { withExtendedLifetime(folder) {} }
        let logger = CapturedLogs().logger()
        let before = try RunSnapshotReader.read(path: path, logger: logger)
        #expect(before.sweepNames == ["study"] && before.storesSummaries)
        #expect(before.trials.map(\.key) == Self.done + [Self.running, Self.failed, Self.pending])
        #expect(before.trials.map(\.status) == ["done", "done", "running", "failed", "pending"])
        #expect(before.trials.compactMap(\.summary?.trainableParameters) == [4096, 4096])
        #expect(before.epochs.map(\.epoch) == [1, 2, 1, 2, 1])
        #expect(before.lastAnswers.count == 4 && before.lastAnswers.allSatisfy { $0.epoch == 2 && $0.result.answer == "Paris." })
        _ = try RunStore(path: path, logger: logger)
        #expect(try RunSnapshotReader.read(path: path, logger: logger) == before)
    }

    /// The dashboard reads the file as it is, never migrating it: before v5 it has no Slurm columns, before
    /// v8 no phases, before v9 no stopping rules, before v10 no refusals; each is read as absent.
    @Test func theDashboardShowsItWithoutMigratingIt() throws {
        let (folder, path) = try copyOfFixture()
        defer { withExtendedLifetime(folder) {} }
        let reader = try DashboardReader(location: path, logger: CapturedLogs().logger())
        let state = try reader.state()
        #expect(state.trials.map(\.key) == Self.done + [Self.running, Self.failed, Self.pending])
        #expect(state.trials.map(\.status) == ["done", "done", "running", "failed", "pending"])
        #expect(state.trials.allSatisfy { $0.decision == nil && $0.waiting == nil })
        #expect(state.workers.map(\.id) == ["w1", "w2"] && state.workers.map(\.trial) == [Self.running, nil], "\(state.workers)")
        #expect(state.charts.count == 3)
        #expect(try reader.answers(of: Self.done[0])?.evaluations.map(\.epoch) == [1, 2])
        let migrations = try DatabaseQueue(path: path).read { try String.fetchAll($0, sql: "SELECT identifier FROM grdb_migrations") }
        #expect(migrations == ["v1-run-database", "v2-trial-summary", "v3-claim-indexes"], "the dashboard migrated the file")
    }

    @Test func theStoreMigratesItToIntegerAttemptIDsAndShowsItsStatus() throws {
        let (folder, path) = try copyOfFixture()
        defer { withExtendedLifetime(folder) {} }
        let clock = ManualClock()
        clock.advance(by: 120)  // just after the fixture's last write: the running attempt's lease holds
        let store = try RunStore(path: path, leaseDuration: 60, logger: CapturedLogs().logger(), clock: { clock.now })
        let migrated = try store.read { db in
            try (types(db, "attempts", "attempt_id"), types(db, "trials", "current_attempt_id"), types(db, "epoch_metrics", "attempt_id"),
                 String.fetchAll(db, sql: "SELECT identifier FROM grdb_migrations"), Row.fetchAll(db, sql: "PRAGMA foreign_key_check"),
                 String.fetchAll(db, sql: "SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL ORDER BY name"))
        }
        #expect(migrated.0 == ("INTEGER", ["integer"]) && migrated.1 == ("INTEGER", ["integer"]) && migrated.2 == ("INTEGER", ["integer"]))
        #expect(migrated.3 == RunSchema.migrator.migrations)
        #expect(migrated.4.isEmpty, "foreign keys hold")
        #expect(migrated.5 == ["attempts_by_trial", "attempts_by_worker", "epoch_metrics_by_time", "events_by_trial", "stopping_decisions_by_trial", "trials_by_condition",
                               "trials_by_settings", "trials_by_status", "trials_claim_order", "trials_started_by_condition"])

        let status = try store.status()
        #expect(status.trialsByStatus == [.done: 2, .running: 1, .failed: 1, .pending: 1])
        #expect(status.conditions.map(\.condition) == ["lora-r8", "full"])
        #expect(status.conditions.map(\.epochsRecorded) == [3, 2] && status.connectedWorkers == 1)
        #expect(try store.attempts(of: Self.done[0]).map(\.attemptID) == [1])
        #expect(try store.attempts(of: Self.pending).map(\.outcome) == [.lost])
        #expect(try store.attempts(of: Self.pending).map(\.attemptID) == [5])
        #expect(try store.attempts(of: Self.failed).first?.reason == "out of memory")
        let running = try #require(try store.trial(Self.running))
        #expect(running.status == .running && running.currentAttemptID == 3 && running.lastEpoch == 1)
        #expect(try store.trial(Self.done[1])?.checkpoint == CheckpointRef(epoch: 2, location: .path("checkpoints/full-smollm2-s1")))

        // The sweep goes on: the running attempt writes with its integer id, a new attempt takes the next one.
        #expect(try store.recordEpoch(Self.running, attemptID: 3, report: StoreSamples.epoch(2)) == .accepted)
        let next = try #require(try store.claimNextTrial(for: "w1"))
        #expect(next.key == Self.pending && next.attemptID == 6)
    }

    /// `departed` was allowed but never written; should a database hold it, the worker becomes `lost`.
    @Test func aDepartedWorkerBecomesLostAndTheValueIsNoLongerAllowed() throws {
        let folder = try TemporaryDirectory()
        let path = folder.file("run.db").path
        do {
            let queue = try DatabaseQueue(path: path)
            try RunSchema.migrator.migrate(queue, upTo: "v3-claim-indexes")
            try queue.write { db in
                try db.execute(sql: """
                    INSERT INTO workers (id, host, pid, threads, protocol_version, connected_at, last_seen, status)
                    VALUES ('w9', 'host-9', 9, 1, 'FSW1', '2026-01-01 00:00:00.000', '2026-01-01 00:00:00.000', 'departed')
                    """)
            }
        }
        let store = try RunStore(path: path, logger: CapturedLogs().logger())
        #expect(try store.read { db in try String.fetchAll(db, sql: "SELECT status FROM workers") } == ["lost"])
        #expect(throws: DatabaseError.self) {
            try store.write { transaction in try transaction.db.execute(sql: "UPDATE workers SET status = 'departed'") }
        }
    }
}
