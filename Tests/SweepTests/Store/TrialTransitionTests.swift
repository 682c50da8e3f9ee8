// The trial state machine: allowed moves succeed, the rest are error values.
import Foundation
import Testing
@testable import Store

@Suite struct TrialTransitionTests {
    @Test func theStateMachineAllowsExactlyTheDocumentedMoves() {
        let allowed: Set<String> = [
            "pending>running", "pending>cancelled",
            "running>done", "running>failed", "running>diverged", "running>cancelled", "running>stopped", "running>stale", "running>pending",
            "stale>running", "stale>pending", "stale>failed", "stale>cancelled",
            "running>paused", "paused>pending", "paused>stopped", "paused>cancelled",
        ]
        for from in TrialStatus.allCases {
            for to in TrialStatus.allCases {
                #expect(from.canMove(to: to) == allowed.contains("\(from.rawValue)>\(to.rawValue)"), "\(from) → \(to)")
            }
        }
        #expect(TrialStatus.allCases.filter(\.isTerminal).allSatisfy { state in TrialStatus.allCases.allSatisfy { !state.canMove(to: $0) } })
    }

    @Test func invalidTransitionsAreErrorsAndChangeNothing() throws {
        let fixture = try StoreFixture()
        try fixture.announce("w1")
        try fixture.addSweep([StoreSamples.trial("full", seed: 1)])
        let claimed = try #require(try fixture.store.claimNextTrial(for: "w1"))
        #expect(throws: RunStoreError.invalidTransition(trial: claimed.key, from: .running, to: .running)) {
            try fixture.store.startAttempt(trialKey: claimed.key, workerID: "w1")
        }
        try fixture.recordEpochs(of: claimed)
        #expect(try fixture.store.finishTrial(claimed.key, attemptID: claimed.attemptID, result: .done) == .accepted)
        #expect(throws: RunStoreError.invalidTransition(trial: claimed.key, from: .done, to: .cancelled)) {
            try fixture.store.cancelTrial(claimed.key)
        }
        #expect(try fixture.store.trial(claimed.key)?.status == .done)
        #expect(try fixture.store.attempts(of: claimed.key).count == 1)
        #expect(throws: RunStoreError.unknownTrial(key: "nope")) { try fixture.store.cancelTrial("nope") }
    }

    @Test func cancellingARunningTrialStopsItsAttempt() throws {
        let fixture = try StoreFixture()
        try fixture.announce("w1")
        try fixture.addSweep([StoreSamples.trial("full", seed: 1), StoreSamples.trial("full", seed: 2)])
        let claimed = try #require(try fixture.store.claimNextTrial(for: "w1"))
        try fixture.store.cancelTrial(claimed.key, reason: "user asked")
        try fixture.store.cancelTrial(claimed.key)
        try fixture.store.cancelTrial("full-smollm2-s2")
        #expect(try fixture.store.finishTrial(claimed.key, attemptID: claimed.attemptID, result: .done)
            == .staleAttempt(current: claimed.attemptID))
        let attempts = try fixture.store.attempts(of: claimed.key)
        #expect(attempts.map(\.outcome) == [.cancelled] && attempts.first?.reason == "user asked")
        #expect(try fixture.store.status().trialsByStatus == [.cancelled: 2])
        let kinds = try fixture.store.recentEvents(trialKey: claimed.key).map(\.kind)
        #expect(kinds == ["trial-cancelled", "attempt-started"])
    }

    /// Every public operation that changes a trial's status goes through `TrialState.move`: from each final
    /// state, each of them refuses (an error for the coordinator's own moves, a value for a worker's) and
    /// changes nothing — alone and inside a batch.
    @Test(arguments: [TrialStatus.done, .failed, .diverged, .cancelled])
    func everyPathRefusesToMoveAFinalTrial(_ final: TrialStatus) throws {
        let fixture = try StoreFixture(leaseDuration: 60)
        let store = fixture.store
        try fixture.announce("w1")
        try fixture.addSweep([StoreSamples.trial("full", seed: 1)])
        let claimed = try #require(try store.claimNextTrial(for: "w1"))
        let key = claimed.key, attempt = claimed.attemptID
        switch final {
        case .done:
            try fixture.recordEpochs(of: claimed)
            _ = try store.finishTrial(key, attemptID: attempt, result: .done)
        case .failed: _ = try store.finishTrial(key, attemptID: attempt, result: .failed)
        case .diverged: _ = try store.finishTrial(key, attemptID: attempt, result: .diverged)
        default: try store.cancelTrial(key)
        }
        let eventsBefore = try store.recentEvents(trialKey: key)

        #expect(throws: RunStoreError.invalidTransition(trial: key, from: final, to: .running)) {
            try store.startAttempt(trialKey: key, workerID: "w1")
        }
        if final != .cancelled {
            #expect(throws: RunStoreError.invalidTransition(trial: key, from: final, to: .cancelled)) { try store.cancelTrial(key) }
        }
        #expect(try store.claimNextTrial(for: "w1") == nil)
        for result in TrialResult.allCases {
            let expected: AttemptWrite = result.status == final ? .duplicate : .staleAttempt(current: attempt)
            #expect(try store.finishTrial(key, attemptID: attempt, result: result) == expected)
        }
        #expect(try store.releaseTrial(key, attemptID: attempt) == .staleAttempt(current: attempt))
        #expect(try store.readoptAttempt(attempt, trialKey: key, workerID: "w1") == .refused(status: final))
        #expect(try store.markRunningTrialsStale() == 0)
        fixture.clock.advance(by: 3600)
        #expect(try store.requeueExpiredLeases().isEmpty)
        #expect(try store.requeueAttemptsNotHeld(by: "w1", held: []).isEmpty)
        try store.batch { transaction throws in
            #expect(throws: RunStoreError.invalidTransition(trial: key, from: final, to: .running)) {
                try transaction.startAttempt(trialKey: key, workerID: "w1")
            }
            #expect(try transaction.releaseTrial(key, attemptID: attempt) == .staleAttempt(current: attempt))
            #expect(try transaction.markRunningTrialsStale() == 0)
        }

        #expect(try store.trial(key)?.status == final)
        #expect(try store.attempts(of: key).count == 1)
        #expect(try store.recentEvents(trialKey: key) == eventsBefore)
    }

    /// A coordinator restart moves running trials to stale through the same check, and only those.
    @Test func aRestartMarksOnlyRunningTrialsStale() throws {
        let fixture = try StoreFixture(leaseDuration: 60)
        let store = fixture.store
        try fixture.announce("w1")
        try fixture.addSweep([StoreSamples.trial("full", seed: 1), StoreSamples.trial("full", seed: 2),
                              StoreSamples.trial("full", seed: 3)])
        let running = try #require(try store.claimNextTrial(for: "w1"))
        let finished = try #require(try store.claimNextTrial(for: "w1"))
        try fixture.recordEpochs(of: finished)
        _ = try store.finishTrial(finished.key, attemptID: finished.attemptID, result: .done)
        fixture.clock.advance(by: 50)
        #expect(try store.markRunningTrialsStale() == 1)
        #expect(try store.status().trialsByStatus == [.stale: 1, .done: 1, .pending: 1])
        #expect(try store.attempts(of: running.key).first?.leaseExpiresAt == fixture.clock.now.addingTimeInterval(60))
        #expect(try store.markRunningTrialsStale() == 0)
        #expect(try store.readoptAttempt(running.attemptID, trialKey: running.key, workerID: "w1") == .adopted(nextEpoch: 1))
    }
}
