// The end of a sweep with real processes: a `factsweep coordinator` and three
// simulated `factsweep worker` processes. When the last trial ends the
// coordinator says `shutdown` and keeps its socket long enough for it to
// arrive, so every worker exits at once because it heard it — a worker that
// missed it would reconnect for ever and never exit.
import Foundation
import Testing
@testable import Coordinator
@testable import Protocol
import TestSupport

@Suite(.serialized) struct ShutdownTests {
    /// Passes on the old code too (on loopback libzmq writes the `shutdown`s before the close discards
    /// them): it shows the behaviour, `aWorkerThatSpeaksAsTheSweepEndsIsToldToShutDown` the fix.
    @Test func workersOfAFinishedSweepExitPromptlyBecauseTheyHeardShutdown() throws {
        let dir = try TemporaryDirectory()
        let spec = try SimulatedSpec.write(in: dir.url, name: "ending", epochs: 2, seeds: 6)
        let endpoint = "tcp://127.0.0.1:\(TestPorts.unused())"
        let coordinator = try RetryProcessTests.coordinator(dir.url, spec: spec, endpoint: endpoint)
        defer { coordinator.stop() }
        let workers = try SimulatedWorkers.start(3, endpoint: endpoint, in: dir.url, epochSeconds: 0.05)
        defer { for worker in workers { worker.stop() } }
        #expect(coordinator.wait(seconds: 60), "the sweep completes: \(coordinator.output)")
        #expect(coordinator.status == 0, "\(coordinator.output)")
        // Far less than the liveness window (5 s), after which a worker that heard nothing would only reconnect.
        let deadline = Date().addingTimeInterval(3)
        for (i, worker) in workers.enumerated() {
            #expect(worker.wait(seconds: max(0, deadline.timeIntervalSinceNow)), "worker \(i) still runs: \(worker.output.suffix(1500))")
            #expect(worker.status == 0 && worker.output.contains("sweep complete"), "worker \(i): \(worker.output.suffix(1500))")
        }
        try SweepProcessTests.expectComplete(dir.file("run").appendingPathComponent("run.db"), trials: 6, epochs: 2)
    }

    /// A worker whose hello crosses the sweep's end (it reconnected just then) is told `shutdown` too.
    /// Failed before the fix (run on the old code: no shutdown within 3 s): the coordinator sent `shutdown`
    /// to the workers it knew and closed at once, so a worker it met a moment later never heard it and
    /// would reconnect for ever.
    @Test func aWorkerThatSpeaksAsTheSweepEndsIsToldToShutDown() throws {
        let dir = try TemporaryDirectory()
        let spec = try SimulatedSpec.write(in: dir.url, name: "ending", epochs: 1, seeds: 1)
        let endpoint = "tcp://127.0.0.1:\(TestPorts.unused())"
        let coordinator = try RetryProcessTests.coordinator(dir.url, spec: spec, endpoint: endpoint)
        defer { coordinator.stop() }
        let last = try RetryProcessTests.ScriptedWorker(endpoint)
        try last.helloHoldingNothing()
        let assign = try HostilePeerTests.assignment(last.dealer)
        try last.result { HostilePeerTests.progress($0, assign, epoch: 1, loss: 0.5) }
        let late = try WorkerEndpoint(try ZMQContext(), connect: endpoint, workerID: "late", timing: testTiming(),
                                      logger: HostilePeerTests.logs.logger())
        // The verdict that ends the sweep, and a moment after it a hello from a worker the coordinator has not met.
        try last.result { HostilePeerTests.done($0, assign, outcome: .done, epochs: 1, loss: 0.5) }
        usleep(50_000)
        try late.send(HostilePeerTests.hello("late"))
        let heard = try HostilePeerTests.collect(late, seconds: 3)
        #expect(heard.contains { if case .shutdown = $0 { true } else { false } }, "\(heard)")
        #expect(coordinator.wait(seconds: 10))
    }
}
