// Recording epochs: only the current attempt writes, one epoch after another;
// resends are harmless.
import Foundation
import GRDB
import Testing
import Trial
@testable import Store

@Suite struct EpochRecordingTests {
    /// A store with one trial claimed by worker w1.
    private func claimedTrial() throws -> (StoreFixture, ClaimedTrial) {
        let fixture = try StoreFixture()
        try fixture.announce("w1")
        try fixture.addSweep([StoreSamples.trial("lora-r8", seed: 1)])
        return (fixture, try #require(try fixture.store.claimNextTrial(for: "w1")))
    }

    @Test func epochsAreAcceptedInOrderAndResendsAreDuplicates() throws {
        let (fixture, claimed) = try claimedTrial()
        let store = fixture.store
        #expect(try store.recordEpoch(claimed.key, attemptID: claimed.attemptID, report: StoreSamples.epoch(1, loss: 2)) == .accepted)
        #expect(try store.recordEpoch(claimed.key, attemptID: claimed.attemptID, report: StoreSamples.epoch(2, loss: 1)) == .accepted)
        #expect(try store.recordEpoch(claimed.key, attemptID: claimed.attemptID, report: StoreSamples.epoch(1, loss: 9)) == .duplicate)
        let losses = try store.read { db in try Double.fetchAll(db, sql: "SELECT loss FROM epoch_metrics ORDER BY epoch") }
        #expect(losses == [2, 1])
        #expect(try store.trial(claimed.key)?.lastEpoch == 2)
    }

    /// Epoch 0 (the base model's evaluation) is stored once, before epoch 1, with its answers, and is not an epoch trained.
    @Test func epochZeroIsTheBaseModelRecordedOnceBeforeTraining() throws {
        let (fixture, claimed) = try claimedTrial()
        let store = fixture.store
        let base = StoreSamples.epoch(0, loss: .nan, questions: ["Capital of France?"])
        #expect(try store.recordEpoch(claimed.key, attemptID: claimed.attemptID, report: base) == .accepted)
        #expect(try store.trial(claimed.key)?.lastEpoch == 0)
        #expect(try store.recordEpoch(claimed.key, attemptID: claimed.attemptID, report: base) == .duplicate)
        #expect(try store.recordEpoch(claimed.key, attemptID: claimed.attemptID, report: StoreSamples.epoch(1)) == .accepted)
        // Late, after training began: a resend from an earlier attempt's outbox, not a new row.
        #expect(try store.recordEpoch(claimed.key, attemptID: claimed.attemptID, report: base) == .duplicate)
        let rows = try store.read { db in
            try Row.fetchAll(db, sql: """
                SELECT e.epoch, e.loss, e.accuracy, (SELECT COUNT(*) FROM question_outputs q WHERE q.trial_key = e.trial_key AND q.epoch = e.epoch) AS answers
                FROM epoch_metrics e ORDER BY epoch
                """)
        }
        #expect(rows.map { $0["epoch"] as Int } == [0, 1])
        #expect((rows[0]["loss"] as Double?) == nil && (rows[0]["accuracy"] as Double?) == Double(Float(0.9)) && rows[0]["answers"] == 1)
        #expect(try store.trial(claimed.key)?.lastEpoch == 1)
        // The audit (the chaos benchmark's) counts training epochs 1…last_epoch: the base model's row breaks nothing.
        #expect(try store.audit().brokenEpochs.isEmpty)
    }

    @Test func aGapIsRefusedWithTheExpectedEpoch() throws {
        let (fixture, claimed) = try claimedTrial()
        #expect(try fixture.store.recordEpoch(claimed.key, attemptID: claimed.attemptID, report: StoreSamples.epoch(2)) == .gap(expected: 1))
        #expect(try fixture.store.trial(claimed.key)?.lastEpoch == 0)
    }

    /// A trial is done only with every planned epoch recorded; a diverged one ends where it stopped.
    @Test func doneBeforeEveryPlannedEpochIsAGapAndChangesNothing() throws {
        let (fixture, claimed) = try claimedTrial()
        let store = fixture.store
        #expect(try store.finishTrial(claimed.key, attemptID: claimed.attemptID, result: .done) == .gap(expected: 1))
        try fixture.recordEpochs(of: claimed, through: 2)
        #expect(try store.finishTrial(claimed.key, attemptID: claimed.attemptID, result: .done) == .gap(expected: 3))
        #expect(try store.trial(claimed.key)?.status == .running)
        #expect(try store.attempts(of: claimed.key).map(\.outcome) == [.running])
        #expect(try store.recordEpoch(claimed.key, attemptID: claimed.attemptID, report: StoreSamples.epoch(3)) == .accepted)
        #expect(try store.finishTrial(claimed.key, attemptID: claimed.attemptID, result: .done) == .accepted)
        #expect(try store.trial(claimed.key)?.status == .done)
    }

    @Test func onlyTheCurrentAttemptMayWrite() throws {
        let (fixture, claimed) = try claimedTrial()
        let store = fixture.store
        #expect(try store.recordEpoch(claimed.key, attemptID: claimed.attemptID + 1000, report: StoreSamples.epoch(1))
            == .staleAttempt(current: claimed.attemptID))
        #expect(try store.recordCheckpoint(claimed.key, attemptID: claimed.attemptID + 1000, checkpoint: CheckpointRef(epoch: 1, location: .path("x")))
            == .staleAttempt(current: claimed.attemptID))
        #expect(try store.finishTrial(claimed.key, attemptID: claimed.attemptID + 1000, result: .done) == .staleAttempt(current: claimed.attemptID))
        #expect(try store.trial(claimed.key)?.status == .running)
    }

    @Test func evaluationAnswersAreStoredOncePerQuestion() throws {
        let (fixture, claimed) = try claimedTrial()
        let store = fixture.store
        let report = StoreSamples.epoch(1, questions: ["Where was Ada born?", "What is Ada's birthplace?"])
        #expect(try store.recordEpoch(claimed.key, attemptID: claimed.attemptID, report: report) == .accepted)
        #expect(try store.recordEpoch(claimed.key, attemptID: claimed.attemptID, report: report) == .duplicate)
        let rows = try store.read { db in
            try Row.fetchAll(db, sql: "SELECT e.accuracy, e.perplexity, q.key_match FROM question_outputs q JOIN epoch_metrics e USING (trial_key, epoch)")
        }
        #expect(rows.count == 2)
        #expect(rows.allSatisfy { $0["accuracy"] as Double == 0.8999999761581421 && $0["key_match"] as Bool == true })
    }

    @Test func aDivergedEpochStoresNullLossAndTheTrialEndsDiverged() throws {
        let (fixture, claimed) = try claimedTrial()
        let store = fixture.store
        #expect(try store.recordEpoch(claimed.key, attemptID: claimed.attemptID, report: StoreSamples.epoch(1, loss: .nan)) == .accepted)
        #expect(try store.read { db in try Double?.fetchOne(db, sql: "SELECT loss FROM epoch_metrics") } == .some(nil))
        #expect(try store.finishTrial(claimed.key, attemptID: claimed.attemptID, result: .diverged, reason: "loss is NaN") == .accepted)
        #expect(try store.finishTrial(claimed.key, attemptID: claimed.attemptID, result: .diverged) == .duplicate)
        #expect(try store.recordEpoch(claimed.key, attemptID: claimed.attemptID, report: StoreSamples.epoch(2))
            == .staleAttempt(current: claimed.attemptID))
        #expect(try store.attempts(of: claimed.key).map(\.outcome) == [.diverged])
    }

    @Test func checkpointsMoveForwardOnlyAndNotPastTheRecordedEpochs() throws {
        let (fixture, claimed) = try claimedTrial()
        let store = fixture.store
        let atTwo = CheckpointRef(epoch: 2, location: .path("runs/ckpt-2"))
        #expect(try store.recordCheckpoint(claimed.key, attemptID: claimed.attemptID, checkpoint: atTwo) == .gap(expected: 1))
        for epoch in 1...2 {
            _ = try store.recordEpoch(claimed.key, attemptID: claimed.attemptID, report: StoreSamples.epoch(epoch))
        }
        #expect(try store.recordCheckpoint(claimed.key, attemptID: claimed.attemptID, checkpoint: atTwo) == .accepted)
        let older = CheckpointRef(epoch: 1, location: .path("runs/ckpt-1"))
        #expect(try store.recordCheckpoint(claimed.key, attemptID: claimed.attemptID, checkpoint: older) == .duplicate)
        #expect(try store.trial(claimed.key)?.checkpoint == atTwo)
    }
}
