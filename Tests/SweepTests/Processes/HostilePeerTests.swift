// A real `factsweep coordinator` process against a scripted ZeroMQ DEALER
// that sends what a hostile or buggy worker would: a held attempt and a
// progress report for a trial the run does not have, a diverged trial's
// summary with a NaN loss (resent to a restarted coordinator), and `done`
// before every planned epoch is recorded. The coordinator answers each with
// `error` (or stores it), keeps serving, and the run's results stay right.
// And a real simulated sweep in which one condition diverges.
import Foundation
import Logging
import Testing
@testable import Coordinator
@testable import Protocol
@testable import Worker
import TestSupport
import Trial

@Suite(.serialized) struct HostilePeerTests {
    /// Two trials of two epochs on a placeholder model (the coordinator never opens it).
    static func spec(in dir: URL) throws -> URL {
        let model = dir.appendingPathComponent("placeholder.gguf")
        try Data("never opened\n".utf8).write(to: model)
        let data = TestPaths.repositoryRoot.appendingPathComponent("data/biography.jsonl").path
        let text = """
            {"name": "hostile", "model": "\(model.path)", "data": "\(data)",
             "defaults": {"epochs": 2, "eval_every": 0, "checkpoint_every": 1},
             "conditions": [{"name": "lora", "method": "lora"}], "grid": {"seed": [0, 1]}}
            """
        let url = dir.appendingPathComponent("spec.json")
        try text.write(to: url, atomically: true, encoding: .utf8)
        return url
    }

    /// A coordinator process serving the spec on a free loopback port, and its run directory.
    final class Served {
        let dir: URL
        let spec: URL
        let run: URL
        let endpoint: String
        var coordinator: FactSweepChild
        /// More arguments for the coordinator (`--cluster FILE`).
        let extra: [String]
        private var starts = 0

        /// Serves `spec` (default: two trials of two epochs) on loopback `port` (default: a random one).
        init(_ dir: URL, spec: URL? = nil, port: Int? = nil, extra: [String] = []) throws {
            self.dir = dir
            self.spec = try spec ?? HostilePeerTests.spec(in: dir)
            self.extra = extra
            run = dir.appendingPathComponent("run")
            endpoint = "tcp://127.0.0.1:\(port ?? TestPorts.unused())"
            coordinator = try Self.start(spec: self.spec, run: run, endpoint: endpoint, extra: extra,
                                         log: dir.appendingPathComponent("coordinator-0.log"))
        }

        static func start(spec: URL, run: URL, endpoint: String, extra: [String] = [], log: URL) throws -> FactSweepChild {
            let child = try FactSweepChild(["coordinator", spec.path, "--bind", endpoint, "--run-dir", run.path] + extra, log: log)
            guard child.waitForOutput("listening on", seconds: 20) else {
                child.stop()
                throw CoordinatorError("the coordinator did not start: \(child.output)")
            }
            return child
        }

        /// Kills the coordinator with SIGKILL and starts another on the same run and address.
        func restart() throws {
            coordinator.kill9()
            starts += 1
            coordinator = try Self.start(spec: spec, run: run, endpoint: endpoint, extra: extra,
                                         log: dir.appendingPathComponent("coordinator-\(starts).log"))
        }

        var database: URL { run.appendingPathComponent("run.db") }
    }

    static let logs = CapturedLogs()

    static func dealer(_ served: Served, id: String = "evil") throws -> WorkerEndpoint {
        try WorkerEndpoint(try ZMQContext(), connect: served.endpoint, workerID: id, timing: testTiming(), logger: logs.logger())
    }

    static func hello(_ id: String = "evil", session: String = "s1", held: [Message.HeldAttempt] = []) -> Message {
        .hello(.init(workerID: id, session: session, host: "test", pid: 1, threads: 1, held: held))
    }

    /// The first message `match` accepts within 10 s (others are skipped).
    static func expect<T>(_ worker: WorkerEndpoint, _ what: String, _ match: (Message) -> T?) throws -> T {
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline {
            if case let .success(message)? = try worker.receive(timeout: .milliseconds(100)), let found = match(message) { return found }
        }
        throw CoordinatorError("no \(what) within 10 s")
    }

    /// Every message received for `seconds`.
    static func collect(_ worker: WorkerEndpoint, seconds: Double) throws -> [Message] {
        var messages: [Message] = []
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if case let .success(message)? = try worker.receive(timeout: .milliseconds(100)) { messages.append(message) }
        }
        return messages
    }

    static func assignment(_ worker: WorkerEndpoint) throws -> Message.Assign {
        try worker.send(.ready(.init(freeSlots: 1)))
        return try expect(worker, "assign") { if case let .assign(a) = $0 { a } else { nil } }
    }

    static func progress(_ id: MessageID, _ assign: Message.Assign, epoch: Int, loss: Float) -> Message {
        .progress(.init(messageID: id, trial: assign.trial, attempt: assign.attempt,
                        report: EpochReport(epoch: epoch, loss: loss, epochSeconds: 1, trainSeconds: Double(epoch))))
    }

    static func done(_ id: MessageID, _ assign: Message.Assign, outcome: TrialOutcome, epochs: Int, loss: Float) -> Message {
        .done(.init(messageID: id, trial: assign.trial, attempt: assign.attempt,
                    summary: .init(outcome: outcome, epochs: epochs, finalLoss: loss, trainableParameters: 10, baseWeightBytes: nil,
                                   peakResidentBytes: 1, secondsPerEpoch: 1, evaluationSeconds: 0)))
    }

    static func acknowledged(_ id: MessageID, in messages: [Message]) -> Bool {
        messages.contains { if case let .ack(ack) = $0 { ack.messageIDs.contains(id) } else { false } }
    }

    @Test func unknownTrialsInHelloAndProgressAreAnsweredAndServingGoesOn() throws {
        let dir = try TemporaryDirectory()
        let served = try Served(dir.url)
        defer { served.coordinator.stop() }
        let worker = try Self.dealer(served)
        try worker.send(Self.hello(held: [.init(trial: "nope", attempt: 99_999, lastEpoch: 1)]))
        let heldError = try Self.expect(worker, "error for the held attempt") { if case let .error(e) = $0 { e.reason } else { nil } }
        #expect(heldError.contains("nope"), "\(heldError)")
        try worker.send(.progress(.init(messageID: 1, trial: "nope", attempt: 99_999,
                                        report: EpochReport(epoch: 1, loss: 1, epochSeconds: 1, trainSeconds: 1))))
        let progressError = try Self.expect(worker, "error for the progress") { if case let .error(e) = $0 { e.reason } else { nil } }
        #expect(progressError.contains("nope"), "\(progressError)")
        // Still serving: the worker gets a real trial and the coordinator is running.
        let assign = try Self.assignment(worker)
        #expect(assign.config.training.epochs == 2)
        #expect(served.coordinator.isRunning, "\(served.coordinator.output)")
    }

    @Test func divergedSummaryWithNaNLossIsStoredAndSurvivesARestart() throws {
        let dir = try TemporaryDirectory()
        let served = try Served(dir.url)
        defer { served.coordinator.stop() }
        var worker = try Self.dealer(served)
        try worker.send(Self.hello())
        let assign = try Self.assignment(worker)
        try worker.send(Self.progress(1, assign, epoch: 1, loss: 2))
        try worker.send(Self.progress(2, assign, epoch: 2, loss: .nan))
        let done = Self.done(3, assign, outcome: .diverged, epochs: 2, loss: .nan)
        try worker.send(done)
        let acked = try Self.expect(worker, "ack of the diverged done") { if case let .ack(a) = $0, a.messageIDs.contains(3) { true } else { nil } }
        #expect(acked)
        let row = try #require(try SweepProcessTests.rows(served.database, "SELECT status, summary FROM trials WHERE key = '\(assign.trial)'").first)
        #expect(row["status"] == "diverged")
        let stored = try TrialJSON.decoder().decode(TrialSummary.self, from: Data(((row["summary"] as String?) ?? "").utf8))
        #expect(stored.outcome == .diverged && (stored.finalLoss?.isNaN ?? false), "\(stored)")

        // The ack was lost (as far as the worker knows): after a coordinator crash it says hello again and resends.
        try served.restart()
        worker.close()
        worker = try Self.dealer(served)
        try worker.send(Self.hello())
        try worker.send(done)
        _ = try Self.expect(worker, "ack of the resent done") { if case let .ack(a) = $0, a.messageIDs.contains(3) { true } else { nil } }
        #expect(served.coordinator.isRunning, "\(served.coordinator.output)")
        let other = try Self.assignment(worker)
        #expect(other.trial != assign.trial)
        let status = try #require(try SweepProcessTests.rows(served.database, "SELECT status FROM trials WHERE key = '\(assign.trial)'").first)
        #expect(status["status"] == "diverged")
    }

    @Test func doneBeforeEveryPlannedEpochIsRefusedWithTheEpochExpected() throws {
        let dir = try TemporaryDirectory()
        let served = try Served(dir.url)
        defer { served.coordinator.stop() }
        let worker = try Self.dealer(served)
        try worker.send(Self.hello())
        let assign = try Self.assignment(worker)
        // An attempt that never sent progress says done: refused, epoch 1 expected.
        try worker.send(Self.done(1, assign, outcome: .done, epochs: 2, loss: 0.5))
        let refusal = try Self.expect(worker, "error for the early done") { if case let .error(e) = $0 { e } else { nil } }
        #expect(refusal.expectedEpoch == 1 && refusal.trial == assign.trial && refusal.attempt == assign.attempt, "\(refusal)")
        // One epoch of two: still refused, and never acknowledged.
        try worker.send(Self.progress(2, assign, epoch: 1, loss: 1))
        try worker.send(Self.done(3, assign, outcome: .done, epochs: 2, loss: 0.5))
        let answers = try Self.collect(worker, seconds: 1.5)
        #expect(answers.contains { if case let .error(e) = $0 { e.expectedEpoch == 2 } else { false } }, "\(answers)")
        #expect(Self.acknowledged(2, in: answers) && !Self.acknowledged(3, in: answers), "\(answers)")
        #expect(try SweepProcessTests.rows(served.database, "SELECT status FROM trials WHERE key = '\(assign.trial)'").first?["status"] == "running")
        // The missing epoch, then the same done resent: applied and acknowledged.
        try worker.send(Self.progress(4, assign, epoch: 2, loss: 0.5))
        try worker.send(Self.done(3, assign, outcome: .done, epochs: 2, loss: 0.5))
        _ = try Self.expect(worker, "ack of the done") { if case let .ack(a) = $0, a.messageIDs.contains(3) { true } else { nil } }
        let trial = try #require(try SweepProcessTests.rows(served.database, "SELECT status, last_epoch FROM trials WHERE key = '\(assign.trial)'").first)
        #expect(trial["status"] == "done" && trial["last_epoch"] == 2, "\(trial)")
        #expect(served.coordinator.isRunning)
    }

    @Test func simulatedSweepWithADivergingConditionCompletesTheOthers() throws {
        let dir = try TemporaryDirectory()
        let model = dir.url.appendingPathComponent("placeholder.gguf")
        try Data("never opened\n".utf8).write(to: model)
        let data = TestPaths.repositoryRoot.appendingPathComponent("data/biography.jsonl").path
        let spec = dir.url.appendingPathComponent("spec.json")
        try """
            {"name": "diverging", "model": "\(model.path)", "data": "\(data)",
             "defaults": {"epochs": 3, "eval_every": 0, "checkpoint_every": 1},
             "conditions": [{"name": "lora", "method": "lora"}],
             "grid": {"lr": [1e-4, \(SimulatedTrainer.divergingLearningRate * 2)], "seed": [0, 1]}}
            """.write(to: spec, atomically: true, encoding: .utf8)
        let run = dir.url.appendingPathComponent("run")
        let result = try FactSweepBinary.run(["run", spec.path, "--workers", "2", "--threads-per-worker", "1", "--simulate", "0.05",
                                             "--run-dir", run.path, "--heartbeat", "0.2", "--lease", "20"])
        #expect(result.status == 0, "\(result.stderr)")
        let trials = try SweepProcessTests.rows(run.appendingPathComponent("run.db"), "SELECT lr, status, last_epoch, summary FROM trials")
        #expect(trials.count == 4)
        for trial in trials {
            let diverging = (trial["lr"] as Double) >= Double(SimulatedTrainer.divergingLearningRate)
            #expect(trial["status"] == (diverging ? "diverged" : "done"), "\(trial)")
            #expect(trial["last_epoch"] == (diverging ? 2 : 3), "\(trial)")
            let summary = try TrialJSON.decoder().decode(TrialSummary.self, from: Data(((trial["summary"] as String?) ?? "").utf8))
            #expect((summary.finalLoss?.isNaN ?? false) == diverging, "\(summary)")
        }
    }
}
