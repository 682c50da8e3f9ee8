// Real processes: `factsweep run` with worker processes on a tiny model —
// every trial done with exactly one metrics row per trial and epoch — and a
// worker killed with SIGKILL mid-trial, whose trial finishes on another worker
// from its checkpoint with no epoch lost or duplicated.
import Core
import Foundation
import GRDB
import Testing
@testable import Coordinator
import TestSupport
import Trial

@Suite(.serialized) struct SweepProcessTests {
    /// A sweep spec over a tiny Llama-3-style model written into `dir`.
    static func spec(in dir: URL, epochs: Int, conditions: String) throws -> URL {
        let model = dir.appendingPathComponent("model")
        try FileManager.default.createDirectory(at: model, withIntermediateDirectories: true)
        try TinyCheckpoints.llama3(in: model)
        let data = TestPaths.repositoryRoot.appendingPathComponent("data/biography.jsonl").path
        let text = """
            {"name": "proc", "model": "\(model.path)", "data": "\(data)",
             "defaults": {"epochs": \(epochs), "eval_every": 0, "checkpoint_every": 1, "lr": 0.001},
             "conditions": [\(conditions)]}
            """
        let url = dir.appendingPathComponent("spec.json")
        try text.write(to: url, atomically: true, encoding: .utf8)
        return url
    }

    /// `dir/cluster.json` for a coordinator on 127.0.0.1:`port` serving `run`, with short timings (a
    /// restarted coordinator is found again within a second).
    static func cluster(in dir: URL, run: URL, port: Int) throws -> URL {
        let cluster = dir.appendingPathComponent("cluster.json")
        try """
            {"coordinator": {"bind": "tcp://127.0.0.1:\(port)", "connect": "tcp://127.0.0.1:\(port)"},
             "run_directory": "\(run.path)", "checkpoint_directory": "\(run.path)/checkpoints", "hosts": [],
             "timing": {"heartbeat_interval_seconds": 0.2, "heartbeat_liveness": 5, "lease_expiry_seconds": 5,
                        "reconnect_initial_seconds": 0.1, "reconnect_max_seconds": 0.5}}
            """.write(to: cluster, atomically: true, encoding: .utf8)
        return cluster
    }

    static func rows(_ db: URL, _ sql: String) throws -> [Row] {
        let queue = try DatabaseQueue(path: db.path, configuration: { var c = Configuration(); c.readonly = true; return c }())
        return try queue.read { try Row.fetchAll($0, sql: sql) }
    }

    /// Every trial is done and has exactly `epochs` metric rows, epochs 1…epochs.
    static func expectComplete(_ db: URL, trials: Int, epochs: Int) throws {
        let statuses = try rows(db, "SELECT status, COUNT(*) AS n FROM trials GROUP BY status")
        #expect(statuses.count == 1 && statuses.first?["status"] == "done" && statuses.first?["n"] == trials, "\(statuses)")
        let perTrial = try rows(db, "SELECT trial_key, COUNT(*) AS n, MIN(epoch) AS lo, MAX(epoch) AS hi FROM epoch_metrics GROUP BY trial_key")
        #expect(perTrial.count == trials)
        for row in perTrial {
            #expect(row["n"] == epochs && row["lo"] == 1 && row["hi"] == epochs, "\(row)")
        }
    }

    @Test func smallSweepOnThreeWorkerProcesses() throws {
        let dir = try TemporaryDirectory()
        let spec = try Self.spec(in: dir.url, epochs: 3, conditions: """
            {"name": "full", "method": "full"}, {"name": "lora", "method": "lora", "rank": 2, "alpha": 4},
            {"name": "ia3", "method": "ia3"}, {"name": "qlora", "method": "qlora", "rank": 2, "alpha": 4}
            """)
        let run = dir.url.appendingPathComponent("run")
        // A budget of 0 keeps no idle model beside the one a trial takes (and the budget reaches every worker).
        let result = try FactSweepBinary.run(["run", spec.path, "--workers", "3", "--threads-per-worker", "1", "--run-dir", run.path,
                                             "--heartbeat", "0.2", "--lease", "20", "--model-cache-mib", "0"])
        #expect(result.status == 0, "\(result.stderr)")
        try Self.expectComplete(run.appendingPathComponent("run.db"), trials: 4, epochs: 3)
        for i in 0..<3 {
            let log = try String(contentsOf: run.appendingPathComponent("logs/worker-\(i).log"), encoding: .utf8)
            #expect(log.contains("from=--model-cache-mib") && log.contains("mib=0"), "worker \(i): \(log.prefix(2000))")
        }
        let workers = try Self.rows(run.appendingPathComponent("run.db"), "SELECT COUNT(DISTINCT worker_id) AS n FROM attempts")
        #expect((workers.first?["n"] as Int?) ?? 0 >= 2, "trials should spread over the workers")
        // Resubmitting the same spec adds no trial and finishes at once.
        let again = try FactSweepBinary.run(["run", spec.path, "--workers", "1", "--run-dir", run.path, "--heartbeat", "0.2"])
        #expect(again.status == 0 && again.stderr.contains("(0 new)"), "\(again.stderr)")
    }

    /// A spec with a precision axis runs end to end on worker processes: each
    /// condition's bf16 trial trains in bf16 (its losses are not f32's), and
    /// the report draws it as a line of its own, says which trials held a bf16
    /// base, and writes each row's precision into the CSV.
    @Test func aPrecisionAxisRunsAndIsReportedApart() throws {
        let dir = try TemporaryDirectory()
        var spec = try String(contentsOf: try Self.spec(in: dir.url, epochs: 2, conditions: """
            {"name": "full", "method": "full"}, {"name": "lora", "method": "lora", "rank": 2, "alpha": 4}
            """), encoding: .utf8)
        spec = spec.replacingOccurrences(of: #""conditions":"#, with: #""grid": {"precision": ["f32", "bf16"]}, "conditions":"#)
        try spec.write(to: dir.file("spec.json"), atomically: true, encoding: .utf8)
        let run = dir.url.appendingPathComponent("run")
        let result = try FactSweepBinary.run(["run", dir.file("spec.json").path, "--workers", "2", "--threads-per-worker", "1",
                                             "--run-dir", run.path, "--heartbeat", "0.2", "--lease", "20"])
        #expect(result.status == 0, "\(result.stderr)")
        let db = run.appendingPathComponent("run.db")
        try Self.expectComplete(db, trials: 4, epochs: 2)
        let losses = try Self.rows(db, """
            SELECT t.condition, json_extract(t.config, '$.training.precision') AS precision, e.loss
            FROM epoch_metrics e JOIN trials t ON t.key = e.trial_key WHERE e.epoch = 2 ORDER BY t.condition, precision
            """)
        #expect(losses.count == 4, "\(losses)")
        for condition in ["full", "lora"] {
            let pair = losses.filter { $0["condition"] == condition }
            #expect(pair.count == 2 && (pair[0]["loss"] as Double?) != (pair[1]["loss"] as Double?), "\(pair)")
        }
        // Each stored trial says what its products ran on, as its worker's engine for its precision names it.
        let engines = try Self.rows(db, """
            SELECT coalesce(json_extract(config, '$.training.precision'), 'f32') AS precision, json_extract(summary, '$.engine') AS engine
            FROM trials
            """)
        #expect(engines.count == 4, "\(engines)")
        for row in engines {
            let precision = Precision(rawValue: (row["precision"] as String?) ?? "") ?? .f32
            #expect((row["engine"] as String?) == MatmulEngine.productsName(for: precision), "\(row)")
        }
        let report = try FactSweepBinary.run(["report", run.path, "--out", dir.file("report").path])
        #expect(report.status == 0, "\(report.stderr)")
        let markdown = try String(contentsOf: dir.file("report/report.md"), encoding: .utf8)
        for line in ["full, f32", "full, bf16", "lora, f32", "lora, bf16"] {
            #expect(markdown.contains("| \(line) |"), "no line \(line) in the summary")
        }
        #expect(markdown.contains("projections rounded to bf16 (bf16 precision)"), "the model table names no bf16 base")
        let csv = try String(contentsOf: dir.file("report/metrics.csv"), encoding: .utf8).split(separator: "\r\n")
        for (condition, precision) in [("full", "bf16"), ("full", "f32"), ("lora", "bf16"), ("lora", "f32")] {
            #expect(csv.filter { $0.hasSuffix(",\(precision),f32,false,\"\(condition), \(precision)\"") }.count == 2, "\(csv)")
        }
    }

    @Test func killedWorkersTrialFinishesElsewhereFromItsCheckpoint() throws {
        let dir = try TemporaryDirectory()
        let epochs = 12
        let spec = try Self.spec(in: dir.url, epochs: epochs, conditions: #"{"name": "lora", "method": "lora", "rank": 2, "alpha": 4}"#)
        let run = dir.url.appendingPathComponent("run")
        let process = Process()
        process.executableURL = try FactSweepBinary.url()
        process.arguments = ["run", spec.path, "--workers", "2", "--threads-per-worker", "1", "--run-dir", run.path,
                             "--heartbeat", "0.2", "--lease", "3"]
        process.currentDirectoryURL = TestPaths.repositoryRoot
        let err = Pipe()
        process.standardError = err
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        defer { if process.isRunning { process.terminate() } }
        // Wait for a few epochs, then SIGKILL the worker holding the trial.
        let db = run.appendingPathComponent("run.db")
        var victim: Int32?
        let deadline = Date().addingTimeInterval(60)
        while victim == nil && Date() < deadline {
            usleep(200_000)
            guard FileManager.default.fileExists(atPath: db.path),
                  let row = try? Self.rows(db, """
                    SELECT w.pid AS pid, t.last_epoch AS e FROM trials t JOIN attempts a ON a.attempt_id = t.current_attempt_id
                    JOIN workers w ON w.id = a.worker_id WHERE t.status = 'running'
                    """).first, let epoch: Int = row["e"], epoch >= 2, epoch < epochs - 3 else { continue }
            victim = row["pid"]
        }
        let pid = try #require(victim, "no running trial seen")
        kill(pid, SIGKILL)
        #expect(process.waitOrKill(seconds: 600), "the sweep did not finish within 600 s of the kill")
        let stderr = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(process.terminationStatus == 0, "\(stderr)")
        try Self.expectComplete(db, trials: 1, epochs: epochs)
        let attempts = try Self.rows(db, "SELECT outcome, worker_id FROM attempts ORDER BY attempt_id")
        #expect(attempts.count >= 2, "\(attempts)")
        #expect(attempts.first?["outcome"] == "lost")
        #expect(attempts.last?["outcome"] == "done")
    }

    @Test func coordinatorKilledAndRestartedLosesNothing() throws {
        let dir = try TemporaryDirectory()
        let epochs = 10
        let spec = try Self.spec(in: dir.url, epochs: epochs, conditions: """
            {"name": "lora", "method": "lora", "rank": 2, "alpha": 4}, {"name": "ia3", "method": "ia3"}
            """)
        let run = dir.url.appendingPathComponent("run")
        let port = TestPorts.unused()
        let cluster = try Self.cluster(in: dir.url, run: run, port: port)
        var logCount = 0
        func start(_ arguments: [String]) throws -> Process {
            let p = Process()
            p.executableURL = try FactSweepBinary.url()
            p.arguments = arguments
            p.currentDirectoryURL = TestPaths.repositoryRoot
            logCount += 1
            let log = dir.url.appendingPathComponent("log-\(logCount)-\(arguments[0]).txt")
            _ = FileManager.default.createFile(atPath: log.path, contents: nil)
            let handle = try FileHandle(forWritingTo: log)
            p.standardOutput = handle
            p.standardError = handle
            try p.run()
            return p
        }
        defer {
            if let names = try? FileManager.default.contentsOfDirectory(atPath: dir.url.path) {
                for name in names.sorted() where name.hasPrefix("log-") && ProcessInfo.processInfo.environment["FACTSWEEP_TEST_LOGS"] != nil {
                    print("== \(name)\n" + ((try? String(contentsOf: dir.url.appendingPathComponent(name), encoding: .utf8)) ?? ""))
                }
            }
        }
        var coordinator = try start(["coordinator", spec.path, "--cluster", cluster.path])
        let workers = try (0..<2).map { i in
            try start(["worker", "--connect", "tcp://127.0.0.1:\(port)", "--threads", "1", "--id", "w\(i)", "--cluster", cluster.path])
        }
        defer {
            for p in workers + [coordinator] where p.isRunning { p.terminate() }
        }
        let db = run.appendingPathComponent("run.db")
        let deadline = Date().addingTimeInterval(60)
        var progressed = false
        while !progressed && Date() < deadline {
            usleep(200_000)
            let recorded: Int? = (try? Self.rows(db, "SELECT COUNT(*) AS n FROM epoch_metrics"))?.first?["n"]
            progressed = (recorded ?? 0) >= 3
        }
        #expect(progressed, "no progress before the kill")
        kill(coordinator.processIdentifier, SIGKILL)
        _ = coordinator.waitOrKill(seconds: 30)
        let acknowledged: Int = (try Self.rows(db, "SELECT COUNT(*) AS n FROM epoch_metrics")).first?["n"] ?? 0
        usleep(500_000)
        coordinator = try start(["coordinator", spec.path, "--cluster", cluster.path])
        let end = Date().addingTimeInterval(90)
        while coordinator.isRunning && Date() < end { usleep(200_000) }
        #expect(!coordinator.isRunning && coordinator.terminationStatus == 0, "the restarted coordinator should finish the sweep")
        try Self.expectComplete(db, trials: 2, epochs: epochs)
        let rowsAfter: Int = (try Self.rows(db, "SELECT COUNT(*) AS n FROM epoch_metrics")).first?["n"] ?? 0
        #expect(rowsAfter >= acknowledged)
        let completions = try Self.rows(db, "SELECT trial_key, COUNT(*) AS n FROM attempts WHERE outcome = 'done' GROUP BY trial_key")
        #expect(completions.count == 2 && completions.allSatisfy { ($0["n"] as Int?) == 1 }, "no trial may run to completion twice: \(completions)")
    }
}
