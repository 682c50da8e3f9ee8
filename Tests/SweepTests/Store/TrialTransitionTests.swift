// The trial state machine: allowed moves succeed, the rest are error values.
import Foundation
import Testing
@testable import Store

@Suite struct TrialTransitionTests {
    @Test func theStateMachineAllowsExactlyTheDocumentedMoves() {
        let allowed: Set<String> = [
            "pending>running", "pending>cancelled",
            "running>done", "running>failed", "running>diverged", "running>cancelled", "running>stale", "running>pending",
            "stale>running", "stale>pending", "stale>failed", "stale>cancelled",
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
}
