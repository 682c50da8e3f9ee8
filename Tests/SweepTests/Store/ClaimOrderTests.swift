// Claiming trials: conditions progress together, preferred models first,
// nothing twice.
import Foundation
import GRDB
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

    /// A trial of `kind` in `precision` on `model`, keyed by both.
    private static func trial(_ kind: MethodKind, _ precision: Precision, model: String = "models/smollm2") -> SweepTrial {
        var trial = StoreSamples.trial(kind.rawValue, seed: 1, model: model)
        trial.config.training.precision = precision
        trial.key += "-\(precision.rawValue)"
        return trial
    }

    /// One file held in one storage: that storage's trials first, then the file's other storages (its
    /// pages are cached), then the other models. Each claim here would go otherwise without the first two
    /// keys: the rows and conditions alone put the 1B trial first and f32 LoRA second.
    @Test func theStorageAWorkerHoldsComesFirst() throws {
        let fixture = try StoreFixture()
        try fixture.announce("w1")
        try fixture.announce("w2")
        try fixture.addSweep([Self.trial(.ia3, .f32, model: "models/llama-1b"), Self.trial(.lora, .f32), Self.trial(.qlora, .f32),
                              Self.trial(.lora, .bf16), Self.trial(.full, .bf16), Self.trial(.ia3, .bf16)])
        let stored = try fixture.store.read { try Row.fetchAll($0, sql: "SELECT key, storage FROM trials ORDER BY rowid") }
        #expect(stored.map { "\($0["key"] as String) \($0["storage"] as String)" } == [
            "ia3-llama-1b-s1-f32 float32", "lora-smollm2-s1-f32 float32", "qlora-smollm2-s1-f32 nf4",
            "lora-smollm2-s1-bf16 bf16", "full-smollm2-s1-bf16 float32", "ia3-smollm2-s1-bf16 bf16"])
        let holdsNF4: [(model: String, storage: LinearStorage)] = [(model: "models/smollm2", storage: .nf4)]
        let first = try fixture.store.claimNextTrial(for: "w1", preferring: ["models/smollm2"], preferringStorages: holdsNF4)
        #expect(first?.key == "qlora-smollm2-s1-f32", "the storage held first")
        let second = try fixture.store.claimNextTrial(for: "w1", preferring: ["models/smollm2"], preferringStorages: holdsNF4)
        #expect(second?.key == "lora-smollm2-s1-f32", "then the file held, in another storage, before another model")
        let bf16 = try fixture.store.claimNextTrial(for: "w2", preferring: ["models/smollm2"],
                                                    preferringStorages: [(model: "models/smollm2", storage: .bf16)])
        #expect(bf16?.key == "ia3-smollm2-s1-bf16")
        let other = try fixture.store.claimNextTrial(for: "w2", preferring: ["models/llama-1b"])
        #expect(other?.key == "ia3-llama-1b-s1-f32", "a worker naming no storages claims by path")
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
