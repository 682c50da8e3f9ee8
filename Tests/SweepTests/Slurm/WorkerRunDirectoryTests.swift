// `factsweep worker --run-dir`: a worker that starts after the sweep has
// finished (a late array task) reads so in RUN/coordinator.json and exits at
// once instead of waiting for a coordinator that is gone; and --run-dir,
// --connect and --connect-file exclude each other.
import Foundation
import Testing
@testable import Coordinator
@testable import Protocol
import TestSupport

struct WorkerRunDirectoryTests {
    @Test func aWorkerOfAFinishedSweepExitsAtOnce() throws {
        let dir = try TemporaryDirectory()
        let run = RunDirectory(dir.url)
        try CoordinatorAddressFile.write(CoordinatorAddress(endpoint: "tcp://127.0.0.1:9", host: "gone", pid: 1, state: .finished,
                                                            timing: ProtocolTiming()), to: run.coordinatorAddress)
        let worker = Process()
        worker.executableURL = try FactSweepBinary.url()
        worker.arguments = ["worker", "--run-dir", dir.url.path, "--simulate", "0.1"]
        let log = dir.file("worker.log")
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        worker.standardError = try FileHandle(forWritingTo: log)
        worker.standardOutput = FileHandle.nullDevice
        try worker.run()
        defer { if worker.isRunning { worker.terminate() } }
        // A worker that took the address would wait for that coordinator for ever.
        let deadline = Date().addingTimeInterval(10)
        while worker.isRunning && Date() < deadline { usleep(50_000) }
        let text = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
        #expect(!worker.isRunning, "still running after 10 s: \(text)")
        if !worker.isRunning { #expect(worker.terminationStatus == 0) }
        #expect(text.contains("has finished the sweep"), "\(text)")
    }

    @Test func oneWayToFindTheCoordinator() throws {
        let both = try FactSweepBinary.run(["worker", "--run-dir", "/tmp", "--connect", "tcp://127.0.0.1:9"])
        #expect(both.status != 0 && both.stderr.contains("exactly one of --connect, --run-dir and --connect-file"), "\(both.stderr)")
        let none = try FactSweepBinary.run(["worker"])
        #expect(none.status != 0 && none.stderr.contains("exactly one of"), "\(none.stderr)")
    }
}
