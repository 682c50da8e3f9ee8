// Leases: a silent worker's trial is requeued up to the retry limit, and a
// worker that outlives a coordinator restart keeps its attempt.
import Foundation
import GRDB
import Testing
@testable import Store
import Store
import Trial

@Suite struct LeaseTests {
    @Test func anExpiredLeaseRequeuesFromTheCheckpointUntilTheRetryLimit() throws {
        let fixture = try StoreFixture(leaseDuration: 60)
        let store = fixture.store
        try fixture.announce("w1")
        try fixture.addSweep([StoreSamples.trial("lora-r8", seed: 1)], retryLimit: 1)
        let first = try #require(try store.claimNextTrial(for: "w1"))
        _ = try store.recordEpoch(first.key, attemptID: first.attemptID, report: StoreSamples.epoch(1))
        _ = try store.recordCheckpoint(first.key, attemptID: first.attemptID, checkpoint: CheckpointRef(epoch: 1, location: .path("c1")))
        _ = try store.recordEpoch(first.key, attemptID: first.attemptID, report: StoreSamples.epoch(2))

        fixture.clock.advance(by: 30)
        try store.heartbeat(workerID: "w1", renewing: [first.attemptID])
        fixture.clock.advance(by: 45)
        #expect(try store.requeueExpiredLeases().isEmpty, "the heartbeat renewed the lease")
        fixture.clock.advance(by: 20)
        #expect(try store.requeueExpiredLeases() == [RequeuedTrial(key: first.key, lostAttemptID: first.attemptID, status: .pending)])
        #expect(fixture.logs.all.contains { $0.level == .warning && $0.message == "lease expired" })

        // Epoch 2 came after the checkpoint: the next attempt trains it again.
        let trial = try #require(try store.trial(first.key))
        #expect(trial.status == .pending && trial.lastEpoch == 1 && trial.attempts == 1)
        #expect(try store.read { db in try Int.fetchAll(db, sql: "SELECT epoch FROM epoch_metrics") } == [1])

        let second = try #require(try store.claimNextTrial(for: "w1"))
        #expect(second.nextEpoch == 2 && second.checkpoint?.epoch == 1)
        #expect(try store.recordEpoch(first.key, attemptID: first.attemptID, report: StoreSamples.epoch(2))
            == .staleAttempt(current: second.attemptID))

        // The first attempt moved the trial on and did not count; attempts without progress do, up to the limit.
        fixture.clock.advance(by: 61)
        #expect(try store.requeueExpiredLeases().map(\.status) == [.pending])
        fixture.clock.advance(by: fixture.retryBackoff.initial)
        _ = try #require(try store.claimNextTrial(for: "w1"))
        fixture.clock.advance(by: 61)
        #expect(try store.requeueExpiredLeases().map(\.status) == [.failed])
        #expect(try store.attempts(of: first.key).map(\.outcome) == [.lost, .lost, .lost])
        #expect(try store.trial(first.key)?.attempts == 3)
        #expect(try store.claimNextTrial(for: "w1") == nil)
    }

    @Test func aWorkerReannouncingItsAttemptAfterARestartKeepsTheTrial() throws {
        let fixture = try StoreFixture(leaseDuration: 60)
        try fixture.announce("w1")
        try fixture.announce("w2")
        try fixture.addSweep([StoreSamples.trial("full", seed: 1)])
        let claimed = try #require(try fixture.store.claimNextTrial(for: "w1"))
        _ = try fixture.store.recordEpoch(claimed.key, attemptID: claimed.attemptID, report: StoreSamples.epoch(1))

        fixture.clock.advance(by: 50)
        try fixture.reopen()
        #expect(try fixture.store.markRunningTrialsStale() == 1)
        fixture.clock.advance(by: 50)
        #expect(try fixture.store.requeueExpiredLeases().isEmpty, "a restart gives workers a fresh lease to re-announce in")
        #expect(try fixture.store.recordEpoch(claimed.key, attemptID: claimed.attemptID, report: StoreSamples.epoch(2))
            == .staleAttempt(current: claimed.attemptID), "a stale trial takes no writes before its worker re-announces")
        #expect(try fixture.store.readoptAttempt(claimed.attemptID, trialKey: claimed.key, workerID: "w2") == .refused(status: .stale))
        #expect(try fixture.store.readoptAttempt(claimed.attemptID, trialKey: claimed.key, workerID: "w1") == .adopted(nextEpoch: 2))
        #expect(try fixture.store.recordEpoch(claimed.key, attemptID: claimed.attemptID, report: StoreSamples.epoch(2)) == .accepted)
        #expect(try fixture.store.trial(claimed.key)?.status == .running)
        #expect(try fixture.store.attempts(of: claimed.key).count == 1)
    }

    /// A coordinator that stops before the workers of its stale trials came back leaves their leases to run
    /// out while no coordinator runs: the next start renews them too, as it does running ones.
    @Test func aTrialStillStaleAtTheNextStartGetsAFreshLeaseToo() throws {
        let fixture = try StoreFixture(leaseDuration: 60)
        try fixture.announce("w1")
        try fixture.addSweep([StoreSamples.trial("full", seed: 1)])
        let claimed = try #require(try fixture.store.claimNextTrial(for: "w1"))
        try fixture.reopen()
        #expect(try fixture.store.markRunningTrialsStale() == 1)
        fixture.clock.advance(by: 600)
        try fixture.reopen()
        #expect(try fixture.store.markRunningTrialsStale() == 0, "no trial became stale at this start")
        #expect(try fixture.store.attempts(of: claimed.key).first?.leaseExpiresAt == fixture.clock.now.addingTimeInterval(60))
        #expect(try fixture.store.requeueExpiredLeases().isEmpty, "the worker has a lease's time to re-announce its attempt")
        #expect(try fixture.store.readoptAttempt(claimed.attemptID, trialKey: claimed.key, workerID: "w1") == .adopted(nextEpoch: 1))
    }

    @Test func anAttemptNotReannouncedInTimeIsLostAndRefusedLater() throws {
        let fixture = try StoreFixture(leaseDuration: 60)
        try fixture.announce("w1")
        try fixture.addSweep([StoreSamples.trial("full", seed: 1)])
        let claimed = try #require(try fixture.store.claimNextTrial(for: "w1"))
        try fixture.reopen()
        _ = try fixture.store.markRunningTrialsStale()
        fixture.clock.advance(by: 61)
        #expect(try fixture.store.requeueExpiredLeases().map(\.status) == [.pending])
        #expect(try fixture.store.readoptAttempt(claimed.attemptID, trialKey: claimed.key, workerID: "w1") == .refused(status: .pending))
    }

    @Test func aHeartbeatRenewsOnlyTheAttemptsItNames() throws {
        let fixture = try StoreFixture(leaseDuration: 60)
        try fixture.announce("w1")
        try fixture.addSweep([StoreSamples.trial("full", seed: 1), StoreSamples.trial("ia3", seed: 1)])
        let named = try #require(try fixture.store.claimNextTrial(for: "w1"))
        let silent = try #require(try fixture.store.claimNextTrial(for: "w1"))
        fixture.clock.advance(by: 40)
        try fixture.store.heartbeat(workerID: "w1", renewing: [named.attemptID])
        fixture.clock.advance(by: 30)
        #expect(try fixture.store.requeueExpiredLeases() == [RequeuedTrial(key: silent.key, lostAttemptID: silent.attemptID, status: .pending)])
        #expect(try fixture.store.trial(named.key)?.status == .running)
    }

    @Test func attemptsAWorkerDoesNotHoldAreRequeuedAtItsHello() throws {
        let fixture = try StoreFixture(leaseDuration: 60)
        try fixture.announce("w1")
        try fixture.announce("w2")
        try fixture.addSweep([StoreSamples.trial("full", seed: 1), StoreSamples.trial("ia3", seed: 1), StoreSamples.trial("lora", seed: 1)])
        let held = try #require(try fixture.store.claimNextTrial(for: "w1"))
        let dropped = try #require(try fixture.store.claimNextTrial(for: "w1"))
        let other = try #require(try fixture.store.claimNextTrial(for: "w2"))
        let requeued = try fixture.store.requeueAttemptsNotHeld(by: "w1", held: [held.attemptID])
        #expect(requeued == [RequeuedTrial(key: dropped.key, lostAttemptID: dropped.attemptID, status: .pending)])
        #expect(try fixture.store.trial(held.key)?.status == .running && fixture.store.trial(other.key)?.status == .running)
        #expect(try fixture.store.attempts(of: dropped.key).first?.reason == "worker w1 does not hold it")
    }

    @Test func aHeartbeatFromAnUnknownWorkerIsAnError() throws {
        let fixture = try StoreFixture()
        #expect(throws: RunStoreError.unknownWorker(id: "ghost")) { try fixture.store.heartbeat(workerID: "ghost") }
    }
}
