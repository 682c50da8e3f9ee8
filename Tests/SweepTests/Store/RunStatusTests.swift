// The status summary: counts, per-condition progress, throughput and ETA inputs.
import Foundation
import Testing
@testable import Store

@Suite struct RunStatusTests {
    @Test func statusCountsProgressAndRecentThroughput() throws {
        let fixture = try StoreFixture()
        let store = fixture.store
        try fixture.announce("w1")
        try fixture.addSweep([StoreSamples.trial("lora-r8", seed: 1), StoreSamples.trial("lora-r8", seed: 2),
                              StoreSamples.trial("full", seed: 1)])
        let claimed = try #require(try store.claimNextTrial(for: "w1"))
        for epoch in 1...3 {
            fixture.clock.advance(by: 100)
            _ = try store.recordEpoch(claimed.key, attemptID: claimed.attemptID, report: StoreSamples.epoch(epoch))
        }
        _ = try store.finishTrial(claimed.key, attemptID: claimed.attemptID, result: .done)

        let status = try store.status(window: 250)
        #expect(status.trialsByStatus == [.done: 1, .pending: 2])
        #expect(status.conditions.map(\.condition) == ["lora-r8", "full"])
        #expect(status.conditions[0] == ConditionProgress(sweep: "study", condition: "lora-r8", trials: 2, done: 1, running: 0,
                                                          pending: 1, ended: 0, epochsRecorded: 3, epochsPlanned: 6))
        #expect(status.recentEpochs == 3 && status.meanRecentEpochSeconds == 2)
        #expect(status.remainingEpochs == 6 && status.connectedWorkers == 1)
        #expect(status.epochsPerHour == 3.0 / 250 * 3600)
        #expect(status.estimatedSecondsRemaining == 500)

        fixture.clock.advance(by: 1000)
        #expect(try store.status(window: 250).estimatedSecondsRemaining == nil)
    }

    /// Early in a sweep the rate is over the time it has run, not the whole window.
    @Test func aYoungSweepsRateIsOverTheTimeItRan() throws {
        let fixture = try StoreFixture()
        try fixture.announce("w1")
        try fixture.addSweep([StoreSamples.trial("full", seed: 1, epochs: 10)])
        fixture.clock.advance(by: 5000)
        let claimed = try #require(try fixture.store.claimNextTrial(for: "w1"))
        for epoch in 1...2 {
            fixture.clock.advance(by: 50)
            _ = try fixture.store.recordEpoch(claimed.key, attemptID: claimed.attemptID, report: StoreSamples.epoch(epoch))
        }
        let status = try fixture.store.status(window: 600)
        #expect(status.window == 100 && status.recentEpochs == 2)
        #expect(status.estimatedSecondsRemaining == 400)
    }

    /// Trials a stopping rule may end early make the ETA a ceiling: only the
    /// remaining epochs of conditions with a rule count, and ended trials none.
    @Test func stoppingRulesMakeTheEstimateAnUpperBound() throws {
        let fixture = try StoreFixture()
        let trials = [StoreSamples.trial("lora", seed: 1, epochs: 10), StoreSamples.trial("full", seed: 1, epochs: 4)]
        _ = try fixture.store.addSweep(name: "study", spec: Data(#"{"name":"study"}"#.utf8), trials: trials, retryLimit: 2,
                                       stopping: ["lora": .target(accuracy: 0.9, evaluations: 2)])
        let status = try fixture.store.status()
        #expect(status.remainingEpochs == 14)
        #expect(status.remainingEpochsUnderStoppingRules == 10)
        #expect(status.estimateIsUpperBound)

        let plain = try StoreFixture()
        try plain.addSweep(trials)
        #expect(try plain.store.status().remainingEpochsUnderStoppingRules == 0)
        #expect(try !plain.store.status().estimateIsUpperBound)
    }
}
