// Durability and concurrency: what was committed survives an unclean stop,
// and readers run beside the writer on consistent snapshots.
import Foundation
import GRDB
import Testing
import TestSupport
@testable import Store
import Store
import Trial

@Suite struct DurabilityTests {
    /// The files a `kill -9` leaves are the database and its write-ahead log
    /// as they are while the store is open (nothing checkpointed or closed):
    /// copy them mid-run and open the copy as the restarted coordinator would.
    @Test func committedWritesSurviveAnUncleanStop() throws {
        let fixture = try StoreFixture()
        try fixture.announce("w1")
        try fixture.addSweep([StoreSamples.trial("lora-r8", seed: 1)])
        let claimed = try #require(try fixture.store.claimNextTrial(for: "w1"))
        for epoch in 1...3 {
            _ = try fixture.store.recordEpoch(claimed.key, attemptID: claimed.attemptID, report: StoreSamples.epoch(epoch))
        }
        let files = FileManager.default
        let walSize = try #require(try files.attributesOfItem(atPath: fixture.path + "-wal")[.size] as? Int)
        #expect(walSize > 0, "the commits are still in the write-ahead log")

        let crashed = try TemporaryDirectory()
        for suffix in ["", "-wal"] {
            try files.copyItem(atPath: fixture.path + suffix, toPath: crashed.file("run.db").path + suffix)
        }
        let restarted = try RunStore(path: crashed.file("run.db").path, mustExist: true, logger: fixture.logs.logger())
        let trial = try #require(try restarted.trial(claimed.key))
        #expect(trial.status == .running && trial.lastEpoch == 3 && trial.currentAttemptID == claimed.attemptID)
        #expect(try restarted.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM epoch_metrics") } == 3)
    }

    @Test func aReaderIsNotBlockedByAnOpenWriteAndSeesOnlyCommittedData() throws {
        let fixture = try StoreFixture()
        let store = fixture.store
        try fixture.addSweep([StoreSamples.trial("full", seed: 1)])
        let inside = DispatchSemaphore(value: 0), proceed = DispatchSemaphore(value: 0), done = DispatchSemaphore(value: 0)
        DispatchQueue.global().async {
            _ = try? store.batch { transaction in
                try transaction.db.execute(sql: "UPDATE trials SET status = 'cancelled'")
                inside.signal()
                proceed.wait()
            }
            done.signal()
        }
        inside.wait()
        #expect(try store.trial("full-smollm2-s1")?.status == .pending)
        proceed.signal()
        done.wait()
        #expect(try store.trial("full-smollm2-s1")?.status == .cancelled)
    }

    @Test func concurrentReadersSeeConsistentSnapshotsWhileEpochsAreWritten() throws {
        let fixture = try StoreFixture()
        let store = fixture.store
        try fixture.announce("w1")
        try fixture.addSweep((1...4).map { StoreSamples.trial("lora-r8", seed: $0, epochs: 25) })
        let claims = try (1...4).map { _ in try #require(try store.claimNextTrial(for: "w1")) }

        let group = DispatchGroup()
        let failures = Counter(), snapshots = Counter()
        let writing = Counter()
        writing.add(1)
        DispatchQueue.global().async(group: group) {
            for epoch in 1...25 {
                for claimed in claims {
                    let write = try? store.recordEpoch(claimed.key, attemptID: claimed.attemptID,
                                                       report: StoreSamples.epoch(epoch, questions: ["q\(epoch)"]))
                    if write != .accepted { failures.add(1) }
                }
            }
            writing.add(-1)
        }
        for _ in 0..<3 {
            DispatchQueue.global().async(group: group) {
                repeat {
                    do {
                        // In one snapshot, each trial's last_epoch matches its rows.
                        let mismatches = try store.read { db in
                            try Int.fetchOne(db, sql: """
                                SELECT COUNT(*) FROM trials t
                                WHERE t.last_epoch <> (SELECT COUNT(*) FROM epoch_metrics e WHERE e.trial_key = t.key)
                                   OR t.last_epoch <> (SELECT COUNT(*) FROM question_outputs q WHERE q.trial_key = t.key)
                                """) ?? -1
                        }
                        _ = try store.status()
                        if mismatches != 0 { failures.add(1) }
                        snapshots.add(1)
                    } catch {
                        failures.add(1)
                    }
                } while writing.value > 0
            }
        }
        group.wait()
        #expect(failures.value == 0)
        #expect(snapshots.value >= 3)
        #expect(try store.status().conditions.first?.epochsRecorded == 100)
    }
}

/// A counter shared between threads.
private final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var count = 0
    var value: Int { lock.withLock { count } }
    func add(_ amount: Int) { lock.withLock { count += amount } }
}
