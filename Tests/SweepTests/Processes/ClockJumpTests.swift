// A wall-clock jump under a live sweep: `factsweep run` (coordinator and
// simulated workers) under libfaketime, whose clock is set forward an hour
// mid-run through a timestamp file (as an NTP step or a resumed laptop would).
// Leases and liveness are on the monotonic clock, so no attempt is lost: every
// trial is done by the one attempt that started it.
import Foundation
import GRDB
import Testing
import TestSupport

@Suite(.serialized) struct ClockJumpTests {
    /// Debian's `faketime` (`apt-get install faketime`) on the PATH. Its wrapper, not a bare LD_PRELOAD of
    /// libfaketime: without the wrapper's shared-memory segment (FAKETIME_SHARED) the library's start-up
    /// hides a Swift program's arguments from it.
    static func faketime() -> URL? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        return path.split(separator: ":").map { URL(fileURLWithPath: String($0)).appendingPathComponent("faketime") }
            .first { FileManager.default.isExecutableFile(atPath: $0.path) }
    }

    /// Failed before the fix: at the first housekeeping after the jump every running attempt's lease
    /// (a wall time 20 s ahead) was an hour past, so each was lost and its trial requeued.
    @Test func aWallClockJumpOfAnHourLosesNoAttempt() throws {
        let faketime = try #require(Self.faketime(), "faketime is not installed (apt-get install faketime)")
        let dir = try TemporaryDirectory()
        let spec = try SimulatedSpec.write(in: dir.url, name: "clock", epochs: 3, seeds: 2)
        let offset = dir.file("faketime.txt")
        try "+0\n".write(to: offset, atomically: true, encoding: .utf8)
        let run = dir.file("run")
        let db = run.appendingPathComponent("run.db")
        let log = dir.file("run.log")
        FileManager.default.createFile(atPath: log.path, contents: nil)
        let process = Process()
        process.executableURL = faketime
        // The offset comes from the file (read at every call), not from the wrapper's FAKETIME.
        process.arguments = ["-f", "+0", "env", "-u", "FAKETIME", try FactSweepBinary.url().path, "run", spec.path, "--workers", "2", "--threads-per-worker", "1", "--simulate", "2",
                             "--run-dir", run.path, "--heartbeat", "0.2", "--lease", "20"]
        process.currentDirectoryURL = TestPaths.repositoryRoot
        // Only the wall clock moves (NTP never moves the monotonic one).
        process.environment = ProcessInfo.processInfo.environment.merging([
            "FAKETIME_TIMESTAMP_FILE": offset.path, "FAKETIME_NO_CACHE": "1", "FAKETIME_DONT_FAKE_MONOTONIC": "1",
        ]) { $1 }
        let handle = try FileHandle(forWritingTo: log)
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
        defer { if process.isRunning { process.terminate() } }

        // Both workers an epoch into their trials, then the jump. Epochs of 2 s: a lease is renewed by
        // progress and by heartbeats whose position moved, so mostly it is not renewed between the jump
        // and the next housekeeping round.
        let deadline = Date().addingTimeInterval(60)
        var running = 0
        while running < 2, Date() < deadline, process.isRunning {
            usleep(50_000)
            guard FileManager.default.fileExists(atPath: db.path) else { continue }
            running = (try? SweepProcessTests.rows(db, "SELECT COUNT(*) AS n FROM trials WHERE status = 'running' AND last_epoch >= 1")
                .first.map { $0["n"] as Int }) ?? 0
        }
        #expect(running == 2, "\(String(decoding: (try? Data(contentsOf: log)) ?? Data(), as: UTF8.self))")
        try "+1h\n".write(to: offset, atomically: true, encoding: .utf8)

        let end = Date().addingTimeInterval(60)
        while process.isRunning && Date() < end { usleep(50_000) }
        #expect(!process.isRunning && process.terminationStatus == 0)
        let output = String(decoding: try Data(contentsOf: log), as: UTF8.self)

        // The coordinator's own log lines show the jump: libfaketime did move its wall clock.
        let stamps = output.split(separator: "\n").compactMap { line -> Date? in
            guard line.count >= 24 else { return nil }
            return ISO8601DateFormatter().date(from: String(line.prefix(24)))
        }
        let spread = (stamps.max() ?? .distantPast).timeIntervalSince(stamps.min() ?? .distantPast)
        #expect(spread > 3000 && spread < 3700, "log times span \(spread) s: \(output.prefix(2000))")

        try SweepProcessTests.expectComplete(db, trials: 2, epochs: 3)
        let outcomes = try SweepProcessTests.rows(db, "SELECT outcome, COUNT(*) AS n FROM attempts GROUP BY outcome")
        #expect(outcomes.count == 1 && outcomes.first?["outcome"] == "done" && outcomes.first?["n"] == 2, "\(outcomes)")
    }
}
