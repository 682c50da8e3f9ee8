// The end of a sweep with real processes: a `factsweep coordinator` and three
// simulated `factsweep worker` processes. When the last trial ends the
// coordinator says `shutdown` and keeps its socket long enough for it to
// arrive, so every worker exits at once because it heard it — a worker that
// missed it would reconnect for ever and never exit.
import Foundation
import Testing
@testable import Coordinator
import TestSupport

@Suite(.serialized) struct ShutdownTests {
    /// Expected to fail before the fix (not run on the old code): `shutdown` was sent and the socket closed
    /// with linger 0 straight after, which discards what libzmq has not written yet.
    @Test func workersOfAFinishedSweepExitPromptlyBecauseTheyHeardShutdown() throws {
        let dir = try TemporaryDirectory()
        let spec = try SimulatedSpec.write(in: dir.url, name: "ending", epochs: 2, seeds: 6)
        let endpoint = "tcp://127.0.0.1:\(Int.random(in: 20_000..<40_000))"
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
}
