// Claiming trials: conditions progress together, preferred models first,
// nothing twice.
import Foundation
import Testing
import Trial
@testable import Store

@Suite struct ClaimOrderTests {
    @Test func conditionsAreInterleavedRoundRobin() throws {
        let fixture = try StoreFixture()
        try fixture.announce("w1")
        try fixture.addSweep([
            StoreSamples.trial("lora-r8", seed: 1), StoreSamples.trial("lora-r8", seed: 2), StoreSamples.trial("lora-r8", seed: 3),
            StoreSamples.trial("full", seed: 1), StoreSamples.trial("full", seed: 2), StoreSamples.trial("ia3", seed: 1),
        ])
        var order: [String] = []
        while let claimed = try fixture.store.claimNextTrial(for: "w1") { order.append(claimed.key) }
        #expect(order == [
            "lora-r8-smollm2-s1", "full-smollm2-s1", "ia3-smollm2-s1",
            "lora-r8-smollm2-s2", "full-smollm2-s2", "lora-r8-smollm2-s3",
        ])
        #expect(try fixture.store.status().trialsByStatus == [.running: 6])
    }

    @Test func preferredModelsComeFirst() throws {
        let fixture = try StoreFixture()
        try fixture.announce("w1")
        try fixture.addSweep([StoreSamples.trial("lora-r8", seed: 1),
                              StoreSamples.trial("lora-r8", seed: 1, model: "models/llama-1b")])
        let claimed = try fixture.store.claimNextTrial(for: "w1", preferring: ["models/llama-1b"])
        #expect(claimed?.key == "lora-r8-llama-1b-s1")
        #expect(claimed?.config.model == "models/llama-1b")
        #expect(claimed?.nextEpoch == 1 && claimed?.checkpoint == nil)
    }

    @Test func aRequeuedTrialResumesAfterFreshOnesAndFromItsCheckpoint() throws {
        let fixture = try StoreFixture()
        try fixture.announce("w1")
        try fixture.addSweep([StoreSamples.trial("lora-r8", seed: 1), StoreSamples.trial("lora-r8", seed: 2)])
        let first = try #require(try fixture.store.claimNextTrial(for: "w1"))
        #expect(try fixture.store.recordEpoch(first.key, attemptID: first.attemptID, report: StoreSamples.epoch(1)) == .accepted)
        let checkpoint = CheckpointRef(epoch: 1, location: .inline(Data([1, 2, 3])))
        #expect(try fixture.store.recordCheckpoint(first.key, attemptID: first.attemptID, checkpoint: checkpoint) == .accepted)
        #expect(try fixture.store.releaseTrial(first.key, attemptID: first.attemptID) == .accepted)

        let second = try #require(try fixture.store.claimNextTrial(for: "w1"))
        #expect(second.key == "lora-r8-smollm2-s2")
        let resumed = try #require(try fixture.store.claimNextTrial(for: "w1"))
        #expect(resumed.key == first.key && resumed.attemptID != first.attemptID)
        #expect(resumed.checkpoint == checkpoint && resumed.nextEpoch == 2)
        #expect(try fixture.store.claimNextTrial(for: "w1") == nil)
        // A release is not a lost attempt: no retry is used up.
        #expect(try fixture.store.attempts(of: first.key).map(\.outcome) == [.superseded, .running])
    }

    @Test func anUnannouncedWorkerGetsNothing() throws {
        let fixture = try StoreFixture()
        try fixture.addSweep([StoreSamples.trial("full", seed: 1)])
        #expect(throws: RunStoreError.unknownWorker(id: "ghost")) { try fixture.store.claimNextTrial(for: "ghost") }
        #expect(try fixture.store.trial("full-smollm2-s1")?.status == .pending)
    }
}
