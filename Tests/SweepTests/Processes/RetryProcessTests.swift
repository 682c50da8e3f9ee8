// Retry accounting with real processes: a `factsweep coordinator` whose
// scripted worker loses every attempt (it says hello again without it, as a
// worker killed and restarted would) — a trial that moves on with each attempt
// is never failed, one that does not is failed after its retry limit with a
// back-off between attempts; and a real `factsweep worker` whose model file is
// gone fails its trial at once with the reason instead of retrying for ever.
import Foundation
import GRDB
import Testing
@testable import Coordinator
@testable import Protocol
import TestSupport
import Trial

@Suite(.serialized) struct RetryProcessTests {
    static func coordinator(_ dir: URL, spec: URL, endpoint: String, _ extra: [String] = []) throws -> FactSweepChild {
        let child = try FactSweepChild(["coordinator", spec.path, "--bind", endpoint, "--run-dir", dir.appendingPathComponent("run").path] + extra,
                                       log: dir.appendingPathComponent("coordinator.log"))
        guard child.waitForOutput("listening on", seconds: 20) else {
            child.stop()
            throw CoordinatorError("the coordinator did not start: \(child.output)")
        }
        return child
    }

    static func endpoint() -> String { "tcp://127.0.0.1:\(TestPorts.unused())" }

    /// A scripted worker: one DEALER, one session, message ids counting up.
    final class ScriptedWorker {
        let dealer: WorkerEndpoint
        let id: String
        var nextID: MessageID = 1

        init(_ endpoint: String, id: String = "w1") throws {
            self.id = id
            dealer = try WorkerEndpoint(try ZMQContext(), connect: endpoint, workerID: id, timing: testTiming(),
                                        logger: HostilePeerTests.logs.logger())
        }

        /// Hello holding nothing: every attempt the coordinator has this worker running is lost now.
        /// Another `session` is a restarted (perhaps rebuilt) process.
        func helloHoldingNothing(session: String = "s1") throws {
            try dealer.send(.hello(.init(workerID: id, session: session, host: "test", pid: 1, threads: 1)))
        }

        /// Asks for work and returns what was assigned within `seconds` (nothing, if the coordinator kept it).
        func offers(within seconds: Double) throws -> [Message.Assign] {
            try dealer.send(.ready(.init(freeSlots: 1)))
            return try HostilePeerTests.collect(dealer, seconds: seconds).compactMap { if case let .assign(a) = $0 { a } else { nil } }
        }

        /// Says hello and waits for the answer to a heartbeat: connected, with no free slots yet.
        func connect(session: String = "s1") throws {
            try helloHoldingNothing(session: session)
            try dealer.send(.heartbeat(.init()))
            _ = try HostilePeerTests.expect(dealer, "a heartbeat") { if case .heartbeat = $0 { true } else { nil } }
        }

        /// Refuses `assign` as a worker built before one of its settings does (protocol version 4).
        func refuseForUnreadSettings(_ assign: Message.Assign) throws {
            try result { .failed(.init(messageID: $0, trial: assign.trial, attempt: assign.attempt,
                                       reason: "worker \(self.id) does not know config.training.x in this assignment; rebuild it",
                                       kind: .error, unreadSettings: ["config.training.x"])) }
        }

        /// Sends `message(id)` and waits for its ack.
        func result(_ message: (MessageID) -> Message) throws {
            let id = nextID
            nextID += 1
            try dealer.send(message(id))
            _ = try HostilePeerTests.expect(dealer, "ack of \(id)") { if case let .ack(a) = $0, a.messageIDs.contains(id) { true } else { nil } }
        }
    }

    static func rows(_ dir: URL, _ sql: String) throws -> [Row] {
        try SweepProcessTests.rows(dir.appendingPathComponent("run/run.db"), sql)
    }

    /// Failed before the fix: the third lost attempt (over retry limit 2) failed the trial although each one
    /// had recorded a new epoch and checkpoint, and no fourth assignment came.
    @Test func aTrialThatMovesOnWithEveryAttemptIsNeverFailedByItsWorkersDying() throws {
        let dir = try TemporaryDirectory()
        let epochs = 5
        let spec = try SimulatedSpec.write(in: dir.url, name: "retries", epochs: epochs, seeds: 1)
        let endpoint = Self.endpoint()
        let coordinator = try Self.coordinator(dir.url, spec: spec, endpoint: endpoint)
        defer { coordinator.stop() }
        let worker = try ScriptedWorker(endpoint)
        for epoch in 1...epochs {
            try worker.helloHoldingNothing()
            let assign = try HostilePeerTests.assignment(worker.dealer)
            #expect(assign.epochsRecorded == epoch - 1 && assign.resume?.epoch == (epoch == 1 ? nil : epoch - 1), "\(assign)")
            try worker.result { HostilePeerTests.progress($0, assign, epoch: epoch, loss: 1 / Float(epoch)) }
            try worker.result { .checkpoint(.init(messageID: $0, trial: assign.trial, attempt: assign.attempt,
                                                  checkpoint: .init(epoch: epoch, location: .inline(Data([UInt8(epoch)]))))) }
            if epoch == epochs {
                try worker.result { HostilePeerTests.done($0, assign, outcome: .done, epochs: epochs, loss: 0.2) }
            }
        }
        #expect(coordinator.wait(seconds: 20), "the sweep ends once its one trial is done")
        let trial = try Self.rows(dir.url, "SELECT status, retries_used FROM trials")
        #expect(trial.first?["status"] == "done" && trial.first?["retries_used"] == 0, "\(trial)")
        let outcomes = try Self.rows(dir.url, "SELECT outcome, charged FROM attempts ORDER BY attempt_id")
        #expect(outcomes.map { $0["outcome"] as String } == ["lost", "lost", "lost", "lost", "done"])
        #expect(outcomes.allSatisfy { $0["charged"] == 0 })
        #expect(try Self.rows(dir.url, "SELECT epoch FROM epoch_metrics ORDER BY epoch").map { $0["epoch"] as Int } == Array(1...epochs))
    }

    /// Failed before the fix: the next attempt was assigned at once, with no back-off.
    @Test func attemptsWithoutProgressBackOffAndFailTheTrialAtTheRetryLimit() throws {
        let dir = try TemporaryDirectory()
        let spec = try SimulatedSpec.write(in: dir.url, name: "retries", epochs: 2, seeds: 1)
        let endpoint = Self.endpoint()
        let coordinator = try Self.coordinator(dir.url, spec: spec, endpoint: endpoint, ["--retry-backoff", "1"])
        defer { coordinator.stop() }
        let worker = try ScriptedWorker(endpoint)
        var waits: [Double] = []
        // Retry limit 2: three attempts lost without progress fail the trial.
        for attempt in 1...3 {
            try worker.helloHoldingNothing()
            let asked = Date()
            let assign = try HostilePeerTests.assignment(worker.dealer)
            if attempt > 1 { waits.append(Date().timeIntervalSince(asked)) }
            #expect(assign.epochsRecorded == 0)
        }
        try worker.helloHoldingNothing()
        #expect(coordinator.wait(seconds: 20), "the sweep ends once its one trial has failed")
        // 1 s after the first counted attempt, 2 s after the second (lower bounds only).
        #expect(waits.count == 2 && waits[0] >= 0.9 && waits[1] >= 1.9, "\(waits)")
        let trial = try Self.rows(dir.url, "SELECT status, retries_used FROM trials")
        #expect(trial.first?["status"] == "failed" && trial.first?["retries_used"] == 3, "\(trial)")
        #expect(try Self.rows(dir.url, "SELECT charged FROM attempts").allSatisfy { $0["charged"] == 1 })
    }

    /// Failed before the change: the refusal counted against the retry limit, and once its back-off
    /// (0.2 s here) had passed the old worker's `ready` was answered with the same trial again. Now the
    /// trial waits for the worker that can read it (the old one keeps it away when it reconnects in the
    /// same session), and the refusal costs nothing.
    @Test func aTrialAnOldWorkerCannotReadGoesToAnotherWorkerAtNoCost() throws {
        let dir = try TemporaryDirectory()
        let spec = try SimulatedSpec.write(in: dir.url, name: "refusals", epochs: 1, seeds: 1)
        let endpoint = Self.endpoint()
        let coordinator = try Self.coordinator(dir.url, spec: spec, endpoint: endpoint, ["--retry-backoff", "0.2"])
        defer { coordinator.stop() }
        let old = try ScriptedWorker(endpoint, id: "w-old"), new = try ScriptedWorker(endpoint, id: "w-new")
        try old.helloHoldingNothing()
        let refused = try HostilePeerTests.assignment(old.dealer)
        try new.connect()
        try old.refuseForUnreadSettings(refused)
        #expect(try old.offers(within: 1.5).isEmpty, "the refused trial went back to the worker that refused it")
        try old.helloHoldingNothing()
        #expect(try old.offers(within: 1).isEmpty, "the same session, reconnected, was offered the trial again")
        let assign = try HostilePeerTests.assignment(new.dealer)
        #expect(assign.trial == refused.trial && assign.attempt != refused.attempt)
        try new.result { HostilePeerTests.progress($0, assign, epoch: 1, loss: 0.5) }
        try new.result { HostilePeerTests.done($0, assign, outcome: .done, epochs: 1, loss: 0.5) }
        #expect(coordinator.wait(seconds: 20), "the sweep ends once its one trial is done")
        let attempts = try Self.rows(dir.url, "SELECT worker_id, outcome, charged FROM attempts ORDER BY attempt_id")
        #expect(attempts.map { "\($0["worker_id"] as String) \($0["outcome"] as String) \($0["charged"] as Int)" }
                == ["w-old failed 0", "w-new done 0"], "\(attempts)")
        #expect(try Self.rows(dir.url, "SELECT retries_used FROM trials").first?["retries_used"] == 0)
    }

    /// A worker that says hello in a new session (restarted, perhaps rebuilt) is offered the trial it
    /// refused in the last one.
    @Test func aRestartedWorkerIsOfferedTheTrialItRefusedBefore() throws {
        let dir = try TemporaryDirectory()
        let spec = try SimulatedSpec.write(in: dir.url, name: "refusals", epochs: 1, seeds: 1)
        let endpoint = Self.endpoint()
        let coordinator = try Self.coordinator(dir.url, spec: spec, endpoint: endpoint)
        defer { coordinator.stop() }
        let old = try ScriptedWorker(endpoint, id: "w-old"), other = try ScriptedWorker(endpoint, id: "w-other")
        try old.helloHoldingNothing()
        let refused = try HostilePeerTests.assignment(old.dealer)
        try other.connect()
        try old.refuseForUnreadSettings(refused)
        // `factsweep status` says why the trial waits, and who refused it.
        let status = try FactSweepBinary.run(["status", dir.url.appendingPathComponent("run").path])
        #expect(status.stdout.contains("waiting for a worker whose build reads their settings (1 pending trial refused by older builds)")
                && status.stdout.contains("\(refused.trial.prefix(12))  refused by w-old; last: worker w-old does not know config.training.x"),
                "\(status.stdout)")
        try old.connect(session: "s2")
        let offered = try old.offers(within: 2)
        #expect(offered.map(\.trial) == [refused.trial], "\(offered)")
        let assign = try #require(offered.first)
        try old.result { HostilePeerTests.progress($0, assign, epoch: 1, loss: 0.5) }
        try old.result { HostilePeerTests.done($0, assign, outcome: .done, epochs: 1, loss: 0.5) }
        #expect(coordinator.wait(seconds: 20), "the sweep ends once its one trial is done")
        #expect(try Self.rows(dir.url, "SELECT charged FROM attempts").allSatisfy { $0["charged"] == 0 })
    }

    /// With no connected worker able to read the trial, refusals count as before: the trial is offered again
    /// after the back-off, and fails at its retry limit with the worker's reason, rather than waiting for ever.
    @Test func aTrialNoConnectedWorkerCanReadFailsAtItsRetryLimit() throws {
        let dir = try TemporaryDirectory()
        let spec = try SimulatedSpec.write(in: dir.url, name: "refusals", epochs: 1, seeds: 1)
        let endpoint = Self.endpoint()
        let coordinator = try Self.coordinator(dir.url, spec: spec, endpoint: endpoint, ["--retry-backoff", "0.2"])
        defer { coordinator.stop() }
        let old = try ScriptedWorker(endpoint, id: "w-old")
        try old.helloHoldingNothing()
        // Retry limit 2: the third counted refusal fails the trial.
        for _ in 1...3 { try old.refuseForUnreadSettings(try HostilePeerTests.assignment(old.dealer)) }
        #expect(coordinator.wait(seconds: 20), "the sweep ends once its one trial has failed")
        let trial = try Self.rows(dir.url, "SELECT status, retries_used FROM trials")
        #expect(trial.first?["status"] == "failed" && trial.first?["retries_used"] == 3, "\(trial)")
        let attempts = try Self.rows(dir.url, "SELECT charged, reason FROM attempts")
        #expect(attempts.count == 3 && attempts.allSatisfy { $0["charged"] == 1 }, "\(attempts)")
        #expect(attempts.allSatisfy { ($0["reason"] as String?)?.contains("rebuild it") == true }, "\(attempts)")
    }

    /// Failed before the fix: the missing model was a retryable failure, the trial was handed back without
    /// counting, and the worker was assigned it again for ever.
    @Test func aMissingModelFileFailsTheTrialAtOnceWithTheReason() throws {
        let dir = try TemporaryDirectory()
        let spec = try SimulatedSpec.write(in: dir.url, name: "retries", epochs: 2, seeds: 1)
        let model = dir.file("placeholder.gguf")
        let endpoint = Self.endpoint()
        let coordinator = try Self.coordinator(dir.url, spec: spec, endpoint: endpoint)
        defer { coordinator.stop() }
        try FileManager.default.removeItem(at: model)
        let worker = try FactSweepChild(["worker", "--connect", endpoint, "--id", "real-1", "--threads", "1",
                                         "--checkpoint-dir", dir.file("checkpoints").path],
                                        log: dir.file("worker.log"))
        defer { worker.stop() }
        #expect(coordinator.wait(seconds: 60), "the sweep ends: \(worker.output)")
        let trial = try Self.rows(dir.url, "SELECT status FROM trials")
        #expect(trial.first?["status"] == "failed", "\(trial)")
        let attempts = try Self.rows(dir.url, "SELECT outcome, reason FROM attempts")
        #expect(attempts.count == 1, "\(attempts)")
        #expect(attempts.first?["outcome"] == "failed")
        #expect((attempts.first?["reason"] as String?)?.contains(model.lastPathComponent) == true, "\(attempts)")
    }
}
