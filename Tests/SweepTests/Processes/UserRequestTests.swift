// `factsweep cancel` and `factsweep retry` with real processes: a trial
// cancelled in a live simulated sweep is stopped by its worker (told `cancel`
// over the coordinator's control socket) and ends `cancelled` while the sweep
// completes the rest; `retry --failed` after a sweep whose trials failed puts
// them back, and the next run completes them; unknown keys and a directory
// that is not a run are refused by name.
import Foundation
import GRDB
import Testing
import TestSupport

@Suite(.serialized) struct UserRequestTests {
    static var facts: URL { TestPaths.repositoryRoot.appendingPathComponent("data/biography.jsonl") }

    @Test func aTrialCancelledInALiveSweepIsStoppedByItsWorkerAndTheRestComplete() throws {
        let dir = try TemporaryDirectory()
        let spec = try SimulatedSpec.write(in: dir.url, name: "requests", epochs: 8, seeds: 4)
        let run = dir.file("run")
        let db = run.appendingPathComponent("run.db")
        let sweep = try FactSweepChild(["run", spec.path, "--workers", "2", "--threads-per-worker", "1", "--simulate", "0.25",
                                        "--run-dir", run.path, "--heartbeat", "0.2", "--lease", "20"], log: dir.file("run.log"))
        defer { sweep.stop() }
        // A trial two epochs in.
        var victim: String?
        let deadline = Date().addingTimeInterval(60)
        while victim == nil, Date() < deadline, sweep.isRunning {
            if FileManager.default.fileExists(atPath: db.path) {
                victim = try? SweepProcessTests.rows(db, "SELECT key FROM trials WHERE status = 'running' AND last_epoch >= 2 LIMIT 1")
                    .first.map { $0["key"] as String }
            }
            if victim == nil { usleep(50_000) }
        }
        let key = try #require(victim, "no trial got two epochs in: \(sweep.output)")
        // A unique start of the key is enough.
        let cancel = try FactSweepBinary.run(["cancel", run.path, String(key.prefix(16))])
        #expect(cancel.status == 0 && cancel.stdout.contains("\(key) cancelled"), "\(cancel.stdout) \(cancel.stderr)")
        #expect(sweep.wait(seconds: 60), "the sweep completes the other trials")
        #expect(sweep.status == 0, "\(sweep.output)")

        let statuses = try SweepProcessTests.rows(db, "SELECT key, status, last_epoch FROM trials")
        for row in statuses {
            let expected = row["key"] as String == key ? "cancelled" : "done"
            #expect(row["status"] == expected, "\(row)")
        }
        let cancelled = try #require(statuses.first { $0["key"] as String == key })
        #expect((cancelled["last_epoch"] as Int) < 8, "stopped before its last epoch")
        #expect(try SweepProcessTests.rows(db, "SELECT outcome FROM attempts WHERE trial_key = ?".replacingOccurrences(of: "?", with: "'\(key)'"))
            .map { $0["outcome"] as String } == ["cancelled"])
        // Its worker heard `cancel` and stopped the trial.
        let logs = try FileManager.default.contentsOfDirectory(at: run.appendingPathComponent("logs"), includingPropertiesForKeys: nil)
            .filter { $0.pathExtension == "log" }.map { (try? String(contentsOf: $0, encoding: .utf8)) ?? "" }
        #expect(logs.contains { $0.contains("trial cancelled") && $0.contains(key) }, "\(logs)")
    }

    @Test func retryFailedAfterASweepPutsItsFailedTrialsBackAndTheNextRunCompletesThem() throws {
        let dir = try TemporaryDirectory()
        let data = dir.file("facts.jsonl")
        try Data("not a fact\n".utf8).write(to: data)
        let spec = try SimulatedSpec.write(in: dir.url, name: "requests", epochs: 2, seeds: 2, data: data)
        let run = dir.file("run")
        let db = run.appendingPathComponent("run.db")
        let first = try FactSweepBinary.run(["run", spec.path, "--workers", "1", "--simulate", "0.01", "--run-dir", run.path,
                                            "--heartbeat", "0.2"])
        #expect(first.status == 0, "\(first.stderr)")
        #expect(try SweepProcessTests.rows(db, "SELECT status FROM trials").allSatisfy { $0["status"] == "failed" })
        let workerLog = run.appendingPathComponent("logs/worker-0.log")
        let firstLog = try String(contentsOf: workerLog, encoding: .utf8)
        #expect(!firstLog.isEmpty, "the first run's worker logged nothing")

        // Refused by name: a key no trial has, and a directory that is no run.
        let unknown = try FactSweepBinary.run(["retry", run.path, "nope"])
        #expect(unknown.status != 0 && unknown.stderr.contains("no trial with key nope"), "\(unknown.stderr)")
        let notARun = try FactSweepBinary.run(["retry", dir.url.path, "--failed"])
        #expect(notARun.status != 0 && notARun.stderr.contains("is not a run directory"), "\(notARun.stderr)")
        let done = try FactSweepBinary.run(["cancel", run.path, "nope"])
        #expect(done.status != 0 && done.stderr.contains("no trial with key nope"), "\(done.stderr)")

        try FileManager.default.removeItem(at: data)
        try FileManager.default.copyItem(at: Self.facts, to: data)
        let retry = try FactSweepBinary.run(["retry", run.path, "--failed"])
        #expect(retry.status == 0 && retry.stdout.split(separator: "\n").count == 2, "\(retry.stdout) \(retry.stderr)")
        #expect(try SweepProcessTests.rows(db, "SELECT status, retries_used FROM trials")
            .allSatisfy { $0["status"] == "pending" && $0["retries_used"] == 0 })
        // Nothing is failed any more, and a failed trial only can be retried: a pending one just stops waiting.
        let again = try FactSweepBinary.run(["retry", run.path, "--failed"])
        #expect(again.status == 0 && again.stdout.contains("no trial to retry"), "\(again.stdout)")

        let second = try FactSweepBinary.run(["run", spec.path, "--workers", "1", "--simulate", "0.01", "--run-dir", run.path,
                                             "--heartbeat", "0.2"])
        #expect(second.status == 0, "\(second.stderr)")
        try SweepProcessTests.expectComplete(db, trials: 2, epochs: 2)
        // The second run appended to its worker's log: the first run's lines are still there.
        let secondLog = try String(contentsOf: workerLog, encoding: .utf8)
        #expect(secondLog.hasPrefix(firstLog) && secondLog.count > firstLog.count, "the second run's worker log lost the first run's lines")
    }
}
