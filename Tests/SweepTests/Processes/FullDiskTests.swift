// A full disk under a live sweep: the run directory of a `factsweep
// coordinator` is a small tmpfs, filled mid-run. The coordinator pauses
// dispatch with a clear log line instead of exiting, answers heartbeats so its
// simulated workers stay, and when the space is freed resumes: every trial is
// done with each epoch recorded exactly once.
import Foundation
import GRDB
import Testing
import TestSupport

@Suite(.serialized) struct FullDiskTests {
    static func command(_ path: String, _ arguments: [String]) throws -> Int32 {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        try process.run()
        guard process.waitOrKill(seconds: 120) else { return -1 }
        return process.terminationStatus
    }

    /// Failed before the fix (reasoned, not run on the old code): the first SQLITE_FULL ended `serve` with
    /// the error and the coordinator exited 1, leaving its workers reconnecting for ever.
    @Test func aFullDiskPausesDispatchAndTheSweepCompletesWhenSpaceReturns() throws {
        let dir = try TemporaryDirectory()
        let spec = try SimulatedSpec.write(in: dir.url, name: "full", epochs: 6, seeds: 6)
        let run = dir.file("run")
        try FileManager.default.createDirectory(at: run, withIntermediateDirectories: true)
        // We are root in CI; without a tmpfs there is no full disk to test, and that must show.
        let mounted = try Self.command("/bin/mount", ["-t", "tmpfs", "-o", "size=6m", "tmpfs", run.path])
        try #require(mounted == 0, "cannot mount a tmpfs on \(run.path) (needs root): the full-disk test cannot run")
        defer { _ = try? Self.command("/bin/umount", ["-l", run.path]) }

        let endpoint = "tcp://127.0.0.1:\(TestPorts.unused())"
        let coordinator = try RetryProcessTests.coordinator(dir.url, spec: spec, endpoint: endpoint)
        defer { coordinator.stop() }
        let workers = try SimulatedWorkers.start(2, endpoint: endpoint, in: dir.url, epochSeconds: 0.2)
        defer { for worker in workers { worker.stop() } }
        let db = run.appendingPathComponent("run.db")
        let started = Date().addingTimeInterval(30)
        var recorded = 0
        while recorded < 3 && Date() < started {
            usleep(50_000)
            recorded = (try? SweepProcessTests.rows(db, "SELECT COUNT(*) AS n FROM epoch_metrics").first.map { $0["n"] as Int }) ?? 0
        }
        #expect(recorded >= 3)

        // Fill the disk.
        let filler = run.appendingPathComponent("filler")
        FileManager.default.createFile(atPath: filler.path, contents: nil)
        let handle = try FileHandle(forWritingTo: filler)
        let chunk = Data(count: 64 << 10)
        while (try? handle.write(contentsOf: chunk)) != nil {}
        try? handle.close()
        #expect(coordinator.waitForOutput("dispatch paused", seconds: 30), "\(coordinator.output.suffix(3000))")
        #expect(coordinator.isRunning)
        sleep(2)
        #expect(coordinator.isRunning && workers.allSatisfy(\.isRunning), "paused, not ended")

        try FileManager.default.removeItem(at: filler)
        #expect(coordinator.waitForOutput("dispatch resumed", seconds: 30), "\(coordinator.output.suffix(3000))")
        #expect(coordinator.wait(seconds: 90), "the sweep completes: \(coordinator.output.suffix(3000))")
        #expect(coordinator.status == 0, "\(coordinator.output.suffix(3000))")
        try SweepProcessTests.expectComplete(db, trials: 6, epochs: 6)
    }
}
