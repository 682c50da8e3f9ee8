// Two real coordinator processes on one run directory: the second refuses to
// start, naming the first's pid and host, and the first keeps serving; once
// the first is killed (SIGKILL), the lock is gone and a new one starts.
import Foundation
import Testing
@testable import Coordinator
import TestSupport

@Suite(.serialized) struct RunDirectoryLockTests {
    /// On a port the kernel picks (`*`): a port drawn at random could be in use, one the tests' own
    /// connections took from the ephemeral range (this test failed so once).
    static func coordinator(_ served: HostilePeerTests.Served, log: String) throws -> FactSweepChild {
        try FactSweepChild(["coordinator", served.spec.path, "--bind", "tcp://127.0.0.1:*", "--run-dir", served.run.path],
                           log: served.dir.appendingPathComponent(log))
    }

    @Test func aSecondCoordinatorOnTheRunDirectoryRefusesNamingTheFirst() throws {
        let dir = try TemporaryDirectory()
        let served = try HostilePeerTests.Served(dir.url)
        defer { served.coordinator.stop() }
        let second = try Self.coordinator(served, log: "second.log")
        defer { second.stop() }
        #expect(second.wait(seconds: 20), "the second coordinator should refuse to start: \(second.output)")
        #expect(second.status != 0)
        let pid = served.coordinator.pid
        #expect(second.output.contains("pid \(pid) on host \(ProcessInfo.processInfo.hostName)"), "\(second.output)")
        #expect(!second.output.contains("listening on"), "\(second.output)")
        #expect(served.coordinator.isRunning)
        // The first still serves.
        let worker = try HostilePeerTests.dealer(served)
        try worker.send(HostilePeerTests.hello())
        _ = try HostilePeerTests.assignment(worker)

        // A crashed coordinator leaves no lock behind.
        served.coordinator.kill9()
        let third = try Self.coordinator(served, log: "third.log")
        defer { third.stop() }
        #expect(third.waitForOutput("listening on", seconds: 20), "\(third.output)")
    }
}
