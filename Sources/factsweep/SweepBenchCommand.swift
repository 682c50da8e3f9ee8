// `factsweep bench sweep`: the coordinator at scale. A sweep of simulated
// trials (each epoch a sleep with synthetic metrics, no model) runs through
// `factsweep run` with N local worker processes — the real coordinator, store,
// protocol and worker client — and its wall time is set against the ideal,
// beside the coordinator's own figures (coordinator-stats.json) and the
// workers' (logs/worker-N.stats.json). See docs/benchmarks.md.
import ArgumentParser
import Coordinator
import Core
import Foundation
import Logging
import Protocol
import Store
import Worker

struct SweepBenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sweep",
        abstract: "Benchmark the sweep coordinator: simulated trials on N local worker processes against the ideal wall time.")

    @Option(name: .long, help: "Trials (a learning-rate × seed grid).")
    var trials = 2000

    @Option(name: .long, help: "Epochs per trial.")
    var epochs = 20

    @Option(name: .long, help: "Local worker processes.")
    var workers = 64

    @Option(name: .long, help: "Seconds each simulated epoch sleeps.")
    var epochSeconds = 0.5

    @Option(name: .long, help: "Trials evaluate every K epochs and after the last (answers for every question are recorded).")
    var evalEvery = 5

    @Option(name: .long, help: "Trials checkpoint every C epochs and at the end.")
    var checkpointEvery = 10

    @Option(name: .long, help: "Facts the simulated evaluations answer (default: data/biography.jsonl).")
    var data: String?

    @Option(name: .long, help: "A new run directory (default runs/bench-sweep-<time>); kept for inspection.")
    var runDir: String?

    @Flag(name: .long, help: "Print the results as JSON.")
    var json = false

    func validate() throws {
        guard trials >= 1, epochs >= 1, workers >= 1 else { throw ValidationError("--trials, --epochs and --workers must be at least 1") }
        guard epochSeconds > 0, epochSeconds.isFinite else { throw ValidationError("--epoch-seconds must be positive") }
        guard evalEvery >= 0, checkpointEvery >= 1 else { throw ValidationError("--eval-every must be ≥ 0 and --checkpoint-every ≥ 1") }
    }

    func run() throws {
        let directory = try Self.newRunDirectory(runDir, name: "bench-sweep")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let spec = try writeSpec(in: directory)
        let log = directory.appendingPathComponent("run.log")
        FileHandle.standardError.write(Data("""
            [bench] \(trials) simulated trials × \(epochs) epochs × \(epochSeconds) s on \(workers) workers; \
            ideal \(String(format: "%.1f", idealSeconds)) s. Output in \(log.path)\n
            """.utf8))
        let load = (before: Self.loadAverage(), after: 0.0)
        let started = ContinuousClock.now
        let status = try runSweep(spec: spec, directory: directory, log: log)
        let wall = (ContinuousClock.now - started).seconds
        guard status == 0 else { throw CLIError("factsweep run exited with status \(status): see \(log.path)") }
        let result = try BenchSweepResult(self, directory: RunDirectory(directory), commandSeconds: wall,
                                          load: (load.before, Self.loadAverage()))
        if json {
            let data = try JSONSerialization.data(withJSONObject: result.object, options: [.prettyPrinted, .sortedKeys])
            print(String(decoding: data, as: UTF8.self))
        } else {
            print(result.table)
        }
    }

    /// `runDir`, or `runs/<name>-<time>`; refused when it exists and is not empty (a benchmark keeps its run).
    static func newRunDirectory(_ runDir: String?, name: String) throws -> URL {
        let stamp = ISO8601DateFormatter.string(from: Date(), timeZone: .current, formatOptions: [.withYear, .withMonth, .withDay, .withTime])
        let directory = URL(fileURLWithPath: runDir ?? "runs/\(name)-\(stamp)").standardizedFileURL
        if let existing = try? FileManager.default.contentsOfDirectory(atPath: directory.path), !existing.isEmpty {
            throw CLIError("\(directory.path) is not empty: name a new --run-dir")
        }
        return directory
    }

    /// The one-minute load average (other work on the machine shows in the figures), or NaN.
    static func loadAverage() -> Double {
        guard let text = try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8) else { return .nan }
        return text.split(separator: " ").first.flatMap { Double($0) } ?? .nan
    }

    /// Every trial's epochs spread perfectly over the workers.
    var idealSeconds: Double { Double(trials * epochs) * epochSeconds / Double(workers) }

    /// The least any schedule of whole trials takes: some worker runs ⌈trials / workers⌉ of them.
    var scheduleBoundSeconds: Double { Double((trials + workers - 1) / workers * epochs) * epochSeconds }

    /// The spec: one LoRA condition over a learning-rate × seed grid of `trials` trials. The model is a
    /// placeholder file (simulated workers never open it); the facts are real, for the answers.
    private func writeSpec(in directory: URL) throws -> URL {
        let model = directory.appendingPathComponent("simulated.gguf")
        try Data("placeholder: factsweep bench sweep's simulated workers never open the model\n".utf8).write(to: model)
        let facts = try DefaultPaths.resolve(data, default: DefaultPaths.data, what: "dataset")
        // The learning-rate axis is the largest divisor of `trials` not above its square root.
        let rates = (1...Int(Double(trials).squareRoot())).last { trials % $0 == 0 } ?? 1
        let spec: [String: Any] = [
            "name": "bench-sweep", "model": model.path, "data": facts.standardizedFileURL.path,
            "defaults": ["epochs": epochs, "eval_every": evalEvery, "checkpoint_every": checkpointEvery],
            "conditions": [["name": "lora", "method": "lora"]],
            "grid": ["lr": (1...rates).map { Double($0) * 1e-4 }, "seed": Array(0..<(trials / rates))],
        ]
        let url = directory.appendingPathComponent("spec.json")
        try JSONSerialization.data(withJSONObject: spec, options: [.prettyPrinted, .sortedKeys]).write(to: url)
        return url
    }

    /// `factsweep run` with simulated workers, its output in `log`; its exit status.
    private func runSweep(spec: URL, directory: URL, log: URL) throws -> Int32 {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        process.arguments = ["run", spec.path, "--workers", "\(workers)", "--threads-per-worker", "1",
                             "--simulate", "\(epochSeconds)", "--run-dir", directory.path]
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        let handle = try FileHandle(forWritingTo: log)
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
        process.waitUntilExit()
        return process.terminationStatus
    }
}

/// What one `bench sweep` measured.
struct BenchSweepResult {
    let bench: SweepBenchCommand
    let coordinator: CoordinatorStatistics
    /// Every worker's ready-to-assign waits after its first trial, pooled; the first waits include the
    /// start of the coordinator and of the other workers (spawned one after another).
    let workerWaits: DurationSummary
    let firstWaits: DurationSummary
    let workerPeakRSS: [Int]
    let workerCPUSeconds: Double
    /// The machine's one-minute load average before and after the run.
    let load: (before: Double, after: Double)
    let trialsDone: Int
    let epochsRecorded: Int
    let commandSeconds: Double

    init(_ bench: SweepBenchCommand, directory: RunDirectory, commandSeconds: Double, load: (Double, Double)) throws {
        self.bench = bench
        self.commandSeconds = commandSeconds
        self.load = load
        coordinator = try CoordinatorStatistics.read(from: directory.statistics)
        var waits: [Double] = [], firsts: [Double] = [], rss: [Int] = [], cpu = 0.0
        for i in 0..<bench.workers {
            let file = directory.logs.appendingPathComponent("worker-\(i).stats.json")
            guard let data = try? Data(contentsOf: file),
                  let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
                throw CLIError("worker \(i) left no statistics in \(file.path)")
            }
            let workerWaits = object["ready_to_assign_seconds"] as? [Double] ?? []
            firsts += workerWaits.prefix(1)
            waits += workerWaits.dropFirst()
            rss.append(object["peak_rss_bytes"] as? Int ?? 0)
            cpu += object["cpu_seconds"] as? Double ?? 0
        }
        workerWaits = DurationSummary(waits)
        firstWaits = DurationSummary(firsts)
        workerPeakRSS = rss
        workerCPUSeconds = cpu
        let store = try directory.open(leaseDuration: 120, logger: Logger(label: "factsweep.bench"), mustExist: true)
        let status = try store.status()
        trialsDone = status.trialsByStatus[.done] ?? 0
        epochsRecorded = status.conditions.map(\.epochsRecorded).reduce(0, +)
    }

    var sweepSeconds: Double { coordinator.sweepSeconds ?? .nan }
    func overhead(against ideal: Double) -> Double { (sweepSeconds - ideal) / ideal }

    var object: [String: Any] {
        [
            "trials": bench.trials, "epochs": bench.epochs, "workers": bench.workers, "epoch_seconds": bench.epochSeconds,
            "trials_done": trialsDone, "epochs_recorded": epochsRecorded,
            "ideal_seconds": bench.idealSeconds, "schedule_bound_seconds": bench.scheduleBoundSeconds,
            "sweep_seconds": sweepSeconds, "command_seconds": commandSeconds,
            "overhead_vs_ideal": overhead(against: bench.idealSeconds),
            "overhead_vs_schedule_bound": overhead(against: bench.scheduleBoundSeconds),
            "first_assign_seconds": coordinator.firstAssignSeconds ?? NSNull(),
            "last_worker_joined_seconds": coordinator.lastWorkerJoinedSeconds ?? NSNull(),
            "messages_received": coordinator.messagesReceived, "messages_sent": coordinator.messagesSent,
            "messages_per_second": coordinator.messagesPerSecond,
            "dispatch_p50_ms": (coordinator.dispatch.p50Seconds ?? .nan) * 1000,
            "dispatch_p99_ms": (coordinator.dispatch.p99Seconds ?? .nan) * 1000,
            "first_dispatch_max_ms": (coordinator.firstDispatch.maxSeconds ?? .nan) * 1000,
            "dispatch_after_claim_p50_ms": (coordinator.dispatchAfterClaim.p50Seconds ?? .nan) * 1000,
            "dispatch_after_claim_p99_ms": (coordinator.dispatchAfterClaim.p99Seconds ?? .nan) * 1000,
            "worker_wait_p50_ms": (workerWaits.p50Seconds ?? .nan) * 1000,
            "worker_wait_p99_ms": (workerWaits.p99Seconds ?? .nan) * 1000,
            "worker_first_wait_max_ms": (firstWaits.maxSeconds ?? .nan) * 1000,
            "sqlite_writes": coordinator.sqliteWrites.count, "sqlite_write_seconds": coordinator.sqliteWrites.totalSeconds,
            "sqlite_write_p50_ms": (coordinator.sqliteWrites.p50Seconds ?? .nan) * 1000,
            "sqlite_write_p99_ms": (coordinator.sqliteWrites.p99Seconds ?? .nan) * 1000,
            "coordinator_cpu_seconds": coordinator.cpuSeconds,
            "worker_peak_rss_mib_max": Double(workerPeakRSS.max() ?? 0) / 1_048_576,
            "worker_peak_rss_mib_sum": Double(workerPeakRSS.reduce(0, +)) / 1_048_576,
            "worker_cpu_seconds": workerCPUSeconds, "load_average_before": load.before, "load_average_after": load.after,
            "batches": coordinator.batches, "largest_batch": coordinator.largestBatch,
        ]
    }

    var table: String {
        let c = coordinator
        func ms(_ s: Double?) -> String { s.map { String(format: "%.2f ms", $0 * 1000) } ?? "—" }
        func pct(_ x: Double) -> String { String(format: "%+.2f%%", x * 100) }
        let rows: [(String, String, String)] = [
            ("trials done / epochs recorded", "\(trialsDone) / \(epochsRecorded)", "\(bench.trials) / \(bench.trials * bench.epochs)"),
            ("ideal wall (trials×epochs×S/workers)", String(format: "%.1f s", bench.idealSeconds), ""),
            ("schedule bound (⌈trials/workers⌉×epochs×S)", String(format: "%.1f s", bench.scheduleBoundSeconds), ""),
            ("sweep wall (serve start → last trial done)", String(format: "%.1f s", sweepSeconds), ""),
            ("overhead vs ideal", pct(overhead(against: bench.idealSeconds)), "< 1%"),
            ("overhead vs schedule bound", pct(overhead(against: bench.scheduleBoundSeconds)), "< 1%"),
            ("factsweep run, start to exit", String(format: "%.1f s", commandSeconds), ""),
            ("last worker joined / first assign", String(format: "%.2f s / %.2f s", c.lastWorkerJoinedSeconds ?? .nan, c.firstAssignSeconds ?? .nan), ""),
            ("messages received / sent", "\(c.messagesReceived) / \(c.messagesSent)", ""),
            ("messages/s (in + out, over serve)", String(format: "%.0f", c.messagesPerSecond), ""),
            ("dispatch p50 / p99 (ready in → assign out, after start-up)", "\(ms(c.dispatch.p50Seconds)) / \(ms(c.dispatch.p99Seconds))", "p99 < 10 ms"),
            ("  of which after the claim (commit, send)", "\(ms(c.dispatchAfterClaim.p50Seconds)) / \(ms(c.dispatchAfterClaim.p99Seconds))", ""),
            ("  (each worker's first, at start-up: p50 / max)", "\(ms(c.firstDispatch.p50Seconds)) / \(ms(c.firstDispatch.maxSeconds))", ""),
            ("worker wait p50 / p99 (ready sent → assign in, after start-up)", "\(ms(workerWaits.p50Seconds)) / \(ms(workerWaits.p99Seconds))", "p99 < 10 ms"),
            ("  (each worker's first wait, at start-up: max)", ms(firstWaits.maxSeconds), ""),
            ("SQLite writes: count, total", String(format: "%d, %.2f s", c.sqliteWrites.count, c.sqliteWrites.totalSeconds), ""),
            ("SQLite write p50 / p99 / max", "\(ms(c.sqliteWrites.p50Seconds)) / \(ms(c.sqliteWrites.p99Seconds)) / \(ms(c.sqliteWrites.maxSeconds))", ""),
            ("batches (one transaction each), largest", "\(c.batches), \(c.largestBatch) messages", ""),
            ("coordinator CPU (of serve wall)", String(format: "%.1f s (%.1f%%)", c.cpuSeconds, 100 * c.cpuSeconds / max(c.serveSeconds, 1e-9)), ""),
            ("workers' CPU, all together", String(format: "%.1f s", workerCPUSeconds), ""),
            ("worker peak RSS, max / sum", String(format: "%.0f MiB / %.0f MiB", Double(workerPeakRSS.max() ?? 0) / 1_048_576,
                                                   Double(workerPeakRSS.reduce(0, +)) / 1_048_576), ""),
            ("load average (1 min) before / after", String(format: "%.2f / %.2f on %d cores", load.before, load.after,
                                                         ProcessInfo.processInfo.activeProcessorCount), ""),
        ]
        let width = rows.map(\.0.count).max() ?? 0, valueWidth = rows.map(\.1.count).max() ?? 0
        let head = "\(bench.trials) trials × \(bench.epochs) epochs × \(bench.epochSeconds) s, \(bench.workers) workers"
        return ([head] + rows.map { name, value, target in
            name.padding(toLength: width, withPad: " ", startingAt: 0) + "  " + value.padding(toLength: valueWidth, withPad: " ", startingAt: 0)
                + (target.isEmpty ? "" : "  target " + target)
        }).joined(separator: "\n")
    }
}
