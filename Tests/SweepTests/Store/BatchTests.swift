// Batches: the coordinator's many operations in one transaction — nothing of
// them is visible (or durable) before the batch commits, each operation stays
// all-or-nothing, and a batch that throws leaves nothing.
import Foundation
import GRDB
import Testing
@testable import Store

@Suite struct BatchTests {
    /// A store with two trials claimed by worker w1.
    private func claimedTrials() throws -> (StoreFixture, ClaimedTrial, ClaimedTrial) {
        let fixture = try StoreFixture()
        try fixture.announce("w1")
        try fixture.addSweep([StoreSamples.trial("lora-r8", seed: 1), StoreSamples.trial("lora-r8", seed: 2)])
        let first = try #require(try fixture.store.claimNextTrial(for: "w1"))
        let second = try #require(try fixture.store.claimNextTrial(for: "w1"))
        return (fixture, first, second)
    }

    /// Epoch rows as another connection (a user's sqlite3) sees them.
    private func committedEpochs(_ fixture: StoreFixture) throws -> Int {
        let reader = try DatabaseQueue(path: fixture.path, configuration: { var c = Configuration(); c.readonly = true; return c }())
        return try reader.read { try Int.fetchOne($0, sql: "SELECT COUNT(*) FROM epoch_metrics") ?? -1 }
    }

    @Test func operationsCommitTogetherWhenTheBatchReturns() throws {
        let (fixture, a, b) = try claimedTrials()
        let store = fixture.store
        let writesBefore = store.writeTimes.summary.count
        let seenInside = try store.batch { transaction throws in
            #expect(try transaction.recordEpoch(a.key, attemptID: a.attemptID, report: StoreSamples.epoch(1, questions: ["Q1", "Q2"])) == .accepted)
            #expect(try transaction.recordEpoch(b.key, attemptID: b.attemptID, report: StoreSamples.epoch(1)) == .accepted)
            try transaction.heartbeat(workerID: "w1")
            return try committedEpochs(fixture)
        }
        #expect(seenInside == 0, "nothing is visible before the batch commits")
        #expect(try committedEpochs(fixture) == 2)
        #expect(try store.trial(a.key)?.lastEpoch == 1 && store.trial(b.key)?.lastEpoch == 1)
        // One transaction, timed once.
        #expect(store.writeTimes.summary.count == writesBefore + 1)
    }

    @Test func aFailedOperationIsUndoneAloneAndTheRestCommits() throws {
        let (fixture, a, _) = try claimedTrials()
        let store = fixture.store
        try store.batch { transaction throws in
            #expect(try transaction.recordEpoch(a.key, attemptID: a.attemptID, report: StoreSamples.epoch(1)) == .accepted)
            // Operations that throw are undone alone (their savepoints); the batch goes on.
            #expect(throws: RunStoreError.self) { try transaction.heartbeat(workerID: "nobody") }
            #expect(throws: RunStoreError.self) { try transaction.recordEpoch("no-such-trial", attemptID: 1, report: StoreSamples.epoch(1)) }
        }
        #expect(try committedEpochs(fixture) == 1)
        #expect(try store.trial(a.key)?.lastEpoch == 1)
    }

    @Test func aBatchThatThrowsLeavesNothing() throws {
        let (fixture, a, _) = try claimedTrials()
        let store = fixture.store
        struct Abandoned: Error {}
        #expect(throws: Abandoned.self) {
            try store.batch { transaction throws in
                _ = try transaction.recordEpoch(a.key, attemptID: a.attemptID, report: StoreSamples.epoch(1))
                throw Abandoned()
            }
        }
        #expect(try committedEpochs(fixture) == 0)
        #expect(try store.trial(a.key)?.lastEpoch == 0)
        // The store is usable afterwards, outside and inside a batch.
        #expect(try store.recordEpoch(a.key, attemptID: a.attemptID, report: StoreSamples.epoch(1)) == .accepted)
        #expect(try store.batch { try $0.recordEpoch(a.key, attemptID: a.attemptID, report: StoreSamples.epoch(2)) } == .accepted)
        #expect(try committedEpochs(fixture) == 2)
    }
}
