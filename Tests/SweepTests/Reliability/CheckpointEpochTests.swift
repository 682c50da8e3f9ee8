// A resume checks its checkpoint file's epoch against the one the run database
// holds, with real processes: a scripted worker records epoch 1 with a
// checkpoint whose file (as if overwritten by a later attempt) holds epoch 2,
// then hands the trial back; a real `factsweep worker --simulate` assigned the
// resume refuses the file, the coordinator forgets that checkpoint, and the
// next attempt starts from scratch — every epoch recorded exactly once.
// Attempts write their checkpoints into directories of their own.
import Foundation
import Testing
@testable import Coordinator
@testable import Protocol
@testable import Worker
import TestSupport
import Trial

@Suite(.serialized) struct CheckpointEpochTests {
    @Test func aCheckpointFileOutOfStepWithTheDatabaseIsRefusedAndTheTrialRestarts() throws {
        let dir = try TemporaryDirectory()
        let served = try HostilePeerTests.Served(dir.url)
        defer { served.coordinator.stop() }

        // Epoch 1 and its checkpoint, whose file holds epoch 2; then the attempt is released. The file lies
        // in the run's checkpoint directory, the only place the coordinator takes checkpoint paths from.
        let checkpoints = served.run.appendingPathComponent("checkpoints")
        let file = checkpoints.appendingPathComponent("overwritten")
        try SimulatedCheckpoint.write(epoch: 2, to: file)
        let scripted = try HostilePeerTests.dealer(served, id: "scripted")
        try scripted.send(HostilePeerTests.hello("scripted"))
        let assign = try HostilePeerTests.assignment(scripted)
        try scripted.send(HostilePeerTests.progress(1, assign, epoch: 1, loss: 2))
        try scripted.send(.checkpoint(.init(messageID: 2, trial: assign.trial, attempt: assign.attempt,
                                            checkpoint: .init(epoch: 1, location: .path(file.path)))))
        try scripted.send(.failed(.init(messageID: 3, trial: assign.trial, attempt: assign.attempt, reason: "released", retryable: true)))
        _ = try HostilePeerTests.expect(scripted, "ack of the release") { if case let .ack(a) = $0, a.messageIDs.contains(3) { true } else { nil } }
        scripted.close()
        let stored = try #require(try SweepProcessTests.rows(served.database,
                                                             "SELECT status, checkpoint_epoch FROM trials WHERE key = '\(assign.trial)'").first)
        #expect(stored["status"] == "pending" && stored["checkpoint_epoch"] == 1, "\(stored)")

        let worker = try FactSweepChild(["worker", "--connect", served.endpoint, "--id", "real", "--threads", "1",
                                         "--simulate", "0.05", "--checkpoint-dir", checkpoints.path],
                                        log: dir.url.appendingPathComponent("worker.log"))
        defer { worker.stop() }
        let deadline = Date().addingTimeInterval(30)
        var statuses: [String] = []
        while Date() < deadline {
            statuses = try SweepProcessTests.rows(served.database, "SELECT status FROM trials").map { $0["status"] }
            if statuses.allSatisfy({ $0 == "done" }) { break }
            usleep(200_000)
        }
        #expect(statuses == ["done", "done"], "\(worker.output)\n\(served.coordinator.output)")
        try SweepProcessTests.expectComplete(served.database, trials: 2, epochs: 2)

        // The refusal names the file's epoch and the assigned one; the trial's next attempt started afresh.
        let attempts = try SweepProcessTests.rows(served.database, """
            SELECT worker_id, outcome, reason, resumed_from_epoch FROM attempts WHERE trial_key = '\(assign.trial)' ORDER BY attempt_id
            """)
        let refused = try #require(attempts.first { $0["worker_id"] == "real" }, "\(attempts)")
        let reason: String = refused["reason"] ?? ""
        #expect(refused["outcome"] == "superseded" && refused["resumed_from_epoch"] == 1, "\(attempts)")
        #expect(reason.contains("holds epoch 2") && reason.contains("resumes from epoch 1") && reason.contains(file.path), "\(reason)")
        #expect(attempts.last?["outcome"] == "done" && attempts.last?["resumed_from_epoch"] == 0, "\(attempts)")
        let events = try SweepProcessTests.rows(served.database, "SELECT kind FROM events WHERE trial_key = '\(assign.trial)'")
        #expect(events.contains { $0["kind"] == "checkpoint-discarded" }, "\(events)")

        // Each attempt of the real worker checkpointed into a directory of its own.
        let paths = try SweepProcessTests.rows(served.database, "SELECT key, checkpoint_path FROM trials")
        for row in paths {
            let path: String = row["checkpoint_path"] ?? ""
            #expect(path.hasPrefix(checkpoints.appendingPathComponent(row["key"] as String).path + "/attempt-"), "\(row)")
        }
    }
}
