// Retry accounting: an attempt counts against the retry limit when it ends
// without progress or with the trial's own error; a trial whose attempts keep
// moving it on is never failed by its workers dying; a counted attempt backs
// the next one off (exponentially, bounded, kept across a restart); the user's
// retry gives a fresh budget.
import Foundation
import GRDB
import Testing
@testable import Store
import Trial

@Suite struct RetryAccountingTests {
    static let backoff = RetryBackoff(initial: 10, maximum: 15)

    /// Claims the trial and records its next epoch (and a checkpoint at it), then lets the lease expire.
    static func progressThenLose(_ fixture: StoreFixture, checkpoint: Bool = true) throws -> RequeuedTrial {
        let claimed = try #require(try fixture.store.claimNextTrial(for: "w1"))
        let epoch = claimed.nextEpoch
        #expect(try fixture.store.recordEpoch(claimed.key, attemptID: claimed.attemptID, report: StoreSamples.epoch(epoch)) == .accepted)
        if checkpoint {
            _ = try fixture.store.recordCheckpoint(claimed.key, attemptID: claimed.attemptID,
                                                   checkpoint: CheckpointRef(epoch: epoch, location: .path("c\(epoch)")))
        }
        fixture.clock.advance(by: 61)
        return try #require(try fixture.store.requeueExpiredLeases().first)
    }

    static func retriesUsed(_ fixture: StoreFixture, _ key: String) throws -> Int? {
        try fixture.store.read { try Int.fetchOne($0, sql: "SELECT retries_used FROM trials WHERE key = ?", arguments: [key]) }
    }

    @Test func attemptsThatMakeProgressNeverFailTheTrial() throws {
        let fixture = try StoreFixture(leaseDuration: 60, retryBackoff: Self.backoff)
        try fixture.announce("w1")
        let trial = StoreSamples.trial("lora-r8", seed: 1, epochs: 6)
        try fixture.addSweep([trial], retryLimit: 1)
        // Five attempts lost in a row, each one epoch and checkpoint further: none counts, none waits.
        for _ in 1...5 { #expect(try Self.progressThenLose(fixture).status == .pending) }
        #expect(try Self.retriesUsed(fixture, trial.key) == 0)
        let last = try #require(try fixture.store.claimNextTrial(for: "w1"), "no back-off after progress")
        try fixture.recordEpochs(of: last, through: 6)
        #expect(try fixture.store.finishTrial(trial.key, attemptID: last.attemptID, result: .done) == .accepted)
        #expect(try fixture.store.attempts(of: trial.key).map(\.outcome) == [.lost, .lost, .lost, .lost, .lost, .done])
    }

    @Test func attemptsWithoutProgressCountAndBackOffUntilTheTrialFails() throws {
        let fixture = try StoreFixture(leaseDuration: 60, retryBackoff: Self.backoff)
        try fixture.announce("w1")
        let trial = StoreSamples.trial("lora-r8", seed: 1)
        try fixture.addSweep([trial], retryLimit: 2)
        // The first attempt records epoch 1 without a checkpoint: progress, not counted; the epoch is rewound.
        #expect(try Self.progressThenLose(fixture, checkpoint: false).status == .pending)
        #expect(try Self.retriesUsed(fixture, trial.key) == 0)
        // The second records epoch 1 again: nothing the trial did not have before — counted.
        #expect(try Self.progressThenLose(fixture, checkpoint: false).status == .pending)
        #expect(try Self.retriesUsed(fixture, trial.key) == 1)
        #expect(try fixture.store.claimNextTrial(for: "w1") == nil, "backing off for 10 s")
        fixture.clock.advance(by: 9)
        // A restarted coordinator keeps the back-off: it is in the database.
        try fixture.reopen()
        #expect(try fixture.store.claimNextTrial(for: "w1") == nil)
        fixture.clock.advance(by: 1.5)
        let third = try #require(try fixture.store.claimNextTrial(for: "w1"))
        fixture.clock.advance(by: 61)
        #expect(try fixture.store.requeueExpiredLeases().map(\.status) == [.pending])
        // 20 s doubled, bounded by 15 s.
        fixture.clock.advance(by: 14)
        #expect(try fixture.store.claimNextTrial(for: "w1") == nil)
        fixture.clock.advance(by: 1.5)
        let fourth = try #require(try fixture.store.claimNextTrial(for: "w1"))
        #expect(fourth.attemptID != third.attemptID)
        fixture.clock.advance(by: 61)
        #expect(try fixture.store.requeueExpiredLeases().map(\.status) == [.failed])
        #expect(try Self.retriesUsed(fixture, trial.key) == 3)
        let charged = try fixture.store.read { try Int.fetchAll($0, sql: "SELECT charged FROM attempts ORDER BY attempt_id") }
        #expect(charged == [0, 1, 1, 1])
    }

    @Test func aTrialErrorCountsEvenAfterProgressAndAnInterruptionOnlyWithout() throws {
        let fixture = try StoreFixture(leaseDuration: 60, retryBackoff: Self.backoff)
        try fixture.announce("w1")
        let trial = StoreSamples.trial("lora-r8", seed: 1)
        try fixture.addSweep([trial], retryLimit: 1)
        let first = try #require(try fixture.store.claimNextTrial(for: "w1"))
        _ = try fixture.store.recordEpoch(trial.key, attemptID: first.attemptID, report: StoreSamples.epoch(1))
        #expect(try fixture.store.releaseTrial(trial.key, attemptID: first.attemptID, reason: "boom", setback: .trialError) == .accepted)
        #expect(try fixture.store.releaseTrial(trial.key, attemptID: first.attemptID, reason: "boom", setback: .trialError) == .duplicate)
        #expect(try Self.retriesUsed(fixture, trial.key) == 1)
        fixture.clock.advance(by: 10)
        // An interrupted attempt that made progress is free…
        let second = try #require(try fixture.store.claimNextTrial(for: "w1"))
        _ = try fixture.store.recordEpoch(trial.key, attemptID: second.attemptID, report: StoreSamples.epoch(1))
        _ = try fixture.store.recordEpoch(trial.key, attemptID: second.attemptID, report: StoreSamples.epoch(2))
        #expect(try fixture.store.releaseTrial(trial.key, attemptID: second.attemptID, reason: "SIGTERM") == .accepted)
        #expect(try Self.retriesUsed(fixture, trial.key) == 1)
        // …one that made none is not.
        let third = try #require(try fixture.store.claimNextTrial(for: "w1"), "no back-off after progress")
        #expect(try fixture.store.releaseTrial(trial.key, attemptID: third.attemptID, reason: "SIGTERM") == .accepted)
        #expect(try fixture.store.trial(trial.key)?.status == .failed)
        #expect(try fixture.store.attempts(of: trial.key).map(\.outcome) == [.failed, .superseded, .superseded])
    }

    /// A worker that cannot read a trial's settings hands it back at no cost: not counted, no back-off
    /// (retry limit 0 would fail it at the first counted attempt). The claim can skip a trial by key, and
    /// then takes the next one in its order.
    @Test func aRefusalForUnreadSettingsCostsNothingAndTheClaimCanSkipTheTrial() throws {
        let fixture = try StoreFixture(leaseDuration: 60, retryBackoff: Self.backoff)
        try fixture.announce("w1")
        let refused = StoreSamples.trial("lora-r8", seed: 1), other = StoreSamples.trial("lora-r8", seed: 2)
        try fixture.addSweep([refused, other], retryLimit: 0)
        let first = try #require(try fixture.store.claimNextTrial(for: "w1"))
        #expect(first.key == refused.key)
        #expect(try fixture.store.releaseTrial(refused.key, attemptID: first.attemptID, reason: "does not know x",
                                               setback: .unreadSettings) == .accepted)
        #expect(try fixture.store.releaseTrial(refused.key, attemptID: first.attemptID, reason: "does not know x",
                                               setback: .unreadSettings) == .duplicate)
        #expect(try fixture.store.trial(refused.key)?.status == .pending)
        #expect(try Self.retriesUsed(fixture, refused.key) == 0)
        #expect(try fixture.store.attempts(of: refused.key).map(\.outcome) == [.failed])
        #expect(try fixture.store.read { try Int.fetchOne($0, sql: "SELECT charged FROM attempts") } == 0)
        // `factsweep status` names it as waiting for a worker that reads its settings.
        let waiting = try fixture.store.refusedTrials()
        #expect(waiting.total == 1 && waiting.trials == [RefusedTrial(trial: refused.key, workers: ["w1"], reason: "does not know x")])
        // Skipped, the claim takes the next trial; not skipped, the refused one at once (no back-off).
        #expect(try fixture.store.claimNextTrial(for: "w1", excluding: [refused.key])?.key == other.key)
        #expect(try fixture.store.claimNextTrial(for: "w1", excluding: [refused.key]) == nil)
        #expect(try fixture.store.claimNextTrial(for: "w1")?.key == refused.key)
        #expect(try fixture.store.refusedTrials().total == 0, "running again: it waits for nothing")
    }

    /// Only pending trials whose latest attempt was a free refusal wait for a worker that reads them, named
    /// with every worker that refused them; a counted error is not such a wait, and `limit` caps the trials
    /// named, not the count.
    @Test func statusNamesOnlyTrialsWaitingAfterAFreeRefusal() throws {
        let fixture = try StoreFixture(leaseDuration: 60, retryBackoff: Self.backoff)
        try fixture.announce("w1")
        try fixture.announce("w2")
        let trials = (1...3).map { StoreSamples.trial("lora-r8", seed: $0) }
        try fixture.addSweep(trials, retryLimit: 5)
        let keys = trials.map(\.key)
        func release(_ worker: String, only key: String?, besides: [String] = [], _ setback: AttemptSetback) throws -> String {
            let claimed = try #require(try fixture.store.claimNextTrial(for: worker, excluding: Set(key.map { k in keys.filter { $0 != k } } ?? besides)))
            #expect(try fixture.store.releaseTrial(claimed.key, attemptID: claimed.attemptID, reason: "\(worker) does not know x",
                                                   setback: setback) == .accepted)
            return claimed.key
        }
        let twice = try release("w1", only: nil, .unreadSettings)
        _ = try release("w2", only: twice, .unreadSettings)
        let once = try release("w1", only: nil, besides: [twice], .unreadSettings)
        let counted = try release("w2", only: nil, besides: [twice, once], .trialError)
        #expect(Set([twice, once, counted]) == Set(keys))
        let expected = [RefusedTrial(trial: twice, workers: ["w1", "w2"], reason: "w2 does not know x"),
                        RefusedTrial(trial: once, workers: ["w1"], reason: "w1 does not know x")]
            .sorted { keys.firstIndex(of: $0.trial)! < keys.firstIndex(of: $1.trial)! }
        let waiting = try fixture.store.refusedTrials()
        #expect(waiting.total == 2 && waiting.trials == expected, "\(waiting)")
        let first = try fixture.store.refusedTrials(limit: 1)
        #expect(first.total == 2 && first.trials == Array(expected.prefix(1)), "\(first)")
        // A permanent failure the user retried is pending with a `failed`, uncharged latest attempt too,
        // at the same instant (the clock stands still): it waits for nothing.
        fixture.clock.advance(by: 20)  // past the counted attempt's back-off
        let failing = try #require(try fixture.store.claimNextTrial(for: "w1", excluding: [twice, once]))
        #expect(failing.key == counted)
        _ = try fixture.store.finishTrial(counted, attemptID: failing.attemptID, result: .failed, reason: "permanent")
        try fixture.store.retryTrial(counted)
        #expect(try fixture.store.trial(counted)?.status == .pending)
        #expect(try fixture.store.refusedTrials().trials.map(\.trial) == expected.map(\.trial))
    }

    @Test func retryingGivesAFailedTrialAFreshBudgetAndRefusesAFinishedOne() throws {
        let fixture = try StoreFixture(leaseDuration: 60, retryBackoff: Self.backoff)
        try fixture.announce("w1")
        let failing = StoreSamples.trial("lora-r8", seed: 1), finished = StoreSamples.trial("lora-r8", seed: 2)
        try fixture.addSweep([failing, finished], retryLimit: 0)
        let done = try #require(try fixture.store.startAttempt(trialKey: finished.key, workerID: "w1"))
        try fixture.recordEpochs(of: done)
        _ = try fixture.store.finishTrial(finished.key, attemptID: done.attemptID, result: .done)
        let claimed = try #require(try fixture.store.claimNextTrial(for: "w1"))
        _ = try fixture.store.releaseTrial(failing.key, attemptID: claimed.attemptID, reason: "boom", setback: .trialError)
        #expect(try fixture.store.trial(failing.key)?.status == .failed)

        try fixture.store.retryTrial(failing.key)
        #expect(try fixture.store.trial(failing.key)?.status == .pending)
        #expect(try Self.retriesUsed(fixture, failing.key) == 0)
        #expect(try fixture.store.claimNextTrial(for: "w1")?.key == failing.key, "no back-off after a retry")
        #expect(throws: RunStoreError.self) { try fixture.store.retryTrial(finished.key) }
        #expect(throws: RunStoreError.unknownTrial(key: "nope")) { try fixture.store.retryTrial("nope") }
    }
}
