// A worker told that the coordinator misses an epoch (an `error` with
// `expected_epoch`, docs/protocol.md "Delivery"): it resends the attempt's
// unacknowledged results from its outbox at once, on the same connection; when
// the epoch was already acknowledged and is gone here too, it hands the trial
// back (`failed`, retryable) so that it restarts from its checkpoint.
import Foundation
import Testing
@testable import Protocol
import TestSupport
@testable import Worker
import Trial

@Suite(.serialized) struct WorkerGapTests {
    static func gap(_ trial: TrialKey, _ attempt: AttemptID, expected: Int) -> Message {
        .error(.init(reason: "\(Message.ErrorReply.epochExpected) \(expected)", trial: trial, attempt: attempt, expectedEpoch: expected))
    }

    @Test func theMissingEpochIsResentFromTheOutbox() throws {
        let context = try ZMQContext()
        let coordinator = try ScriptedCoordinator(context, bind: inprocEndpoint("gap"), workerID: "w-gap", timing: workerTiming())
        let checkpoints = try TemporaryDirectory()
        let worker = TinyTrial.worker(coordinator, id: "w-gap", checkpoints: checkpoints.url, shared: false)
        defer { worker.stop() }
        _ = try coordinator.expect("ready") { if case .ready = $0 { true } else { nil } }
        try coordinator.send(.assign(.init(trial: "t-gap", attempt: 9, config: try TinyTrial.config(epochs: 2, checkpointEvery: 0))))
        // Epoch 1 and the verdict are not acknowledged (as if the coordinator had refused them).
        let results = try coordinator.results(until: \.isDone, withhold: { $0 == 1 || $0 == 3 })
        #expect(results.compactMap(\.resultKind) == ["progress 1", "progress 2", "done 2"])

        let before = coordinator.received.count
        try coordinator.send(Self.gap("t-gap", 9, expected: 1))
        let resent = try coordinator.expect("progress 1 resent", within: .seconds(2)) { message -> Message? in
            if case .progress(let p) = message, p.epoch == 1 { message } else { nil }
        }
        #expect(resent == results[0])
        let verdict = try coordinator.expect("done resent", within: .seconds(2)) { $0.isDone ? $0 : nil }
        #expect(verdict == results[2])
        // At once, on the same connection: not the resend that follows a new hello.
        #expect(!coordinator.received[before...].contains { if case .hello = $0 { true } else { false } }, "\(coordinator.received[before...])")
        try coordinator.send(.ack(.init(messageIDs: [1, 3])))
    }

    @Test func anEpochNoLongerHeldHandsTheTrialBack() throws {
        let context = try ZMQContext()
        let coordinator = try ScriptedCoordinator(context, bind: inprocEndpoint("gap-lost"), workerID: "w-gap-lost", timing: workerTiming())
        let checkpoints = try TemporaryDirectory()
        let worker = TinyTrial.worker(coordinator, id: "w-gap-lost", checkpoints: checkpoints.url, shared: false)
        defer { worker.stop() }
        _ = try coordinator.expect("ready") { if case .ready = $0 { true } else { nil } }
        try coordinator.send(.assign(.init(trial: "t-gap-lost", attempt: 4, config: try TinyTrial.config(epochs: 2, checkpointEvery: 0))))
        // Everything but the verdict is acknowledged: epoch 1 has left the outbox.
        let results = try coordinator.results(until: \.isDone, withhold: { $0 == 3 })
        #expect(results.compactMap(\.resultKind) == ["progress 1", "progress 2", "done 2"])

        try coordinator.send(Self.gap("t-gap-lost", 4, expected: 1))
        let failed = try coordinator.expect("failed", within: .seconds(2)) { if case .failed(let f) = $0 { f } else { nil } }
        #expect(failed.trial == "t-gap-lost" && failed.attempt == 4 && failed.retryable, "\(failed)")
        #expect(failed.reason.contains("epoch 1"), "\(failed.reason)")
    }
}
