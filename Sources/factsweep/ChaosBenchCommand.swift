// `factsweep bench chaos`: a sweep of simulated trials run through every
// fault the sweep must survive, then checked. A `factsweep coordinator`
// process, a TCP proxy (`factsweep bench proxy`) and N `factsweep worker
// --simulate` processes connected through it; while the sweep runs, random
// kill -9 of workers (restarted with their ids) and of the coordinator
// (restarted on its run directory), and kills of the proxy (every connection
// reset; restarted); the workers duplicate and reorder some of their result
// messages (DeliveryFaults), worker 0 runs with its clock three hours behind
// (libfaketime, when installed) and one trial diverges. At the end, by SQL on
// run.db: every trial ended, every epoch of every trial recorded exactly once
// and in order, and every progress a worker saw acknowledged is in the
// database. See docs/benchmarks.md, "Chaos".
import ArgumentParser
import Coordinator
import Foundation
import Logging
import Protocol
import Store
import Trial
import Worker

struct ChaosBenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "chaos",
        abstract: "Run simulated trials through worker, coordinator and link failures, then check that no result was lost or doubled.")

    @Option(name: .long, help: "Trials (one of them diverges).")
    var trials = 300

    @Option(name: .long, help: "Epochs per trial.")
    var epochs = 20

    @Option(name: .long, help: "Local worker processes.")
    var workers = 16

    @Option(name: .long, help: "Seconds each simulated epoch sleeps.")
    var epochSeconds = 0.2

    @Option(name: .long, help: "Mean seconds between faults (kill -9 of a worker, of the coordinator, or of the link).")
    var faultEvery = 1.0

    @Option(name: .long, help: "The most coordinator kills (spread over the run).")
    var coordinatorKills = 3

    @Option(name: .long, help: "Chance that a worker sends a result twice, and that it sends one after the next.")
    var messageFaults = 0.05

    @Option(name: .long, help: "Give up (and fail) after this many seconds.")
    var timeout = 1800.0

    @Option(name: .long, help: "A new run directory (default runs/bench-chaos-<time>); kept for inspection.")
    var runDir: String?

    @Option(name: .long, help: "Seed of the fault schedule.")
    var seed: UInt64 = 1

    @Flag(name: .long, help: "Print the results as JSON.")
    var json = false

    func validate() throws {
        guard trials >= 2, epochs >= 2, workers >= 1 else { throw ValidationError("--trials and --epochs must be at least 2, --workers at least 1") }
        guard epochSeconds > 0, faultEvery > 0, timeout > 0, coordinatorKills >= 0 else {
            throw ValidationError("--epoch-seconds, --fault-every and --timeout must be positive, --coordinator-kills ≥ 0")
        }
        guard (0...0.5).contains(messageFaults) else { throw ValidationError("--message-faults must be in 0…0.5") }
    }

    func run() throws {
        let directory = try SweepBenchCommand.newRunDirectory(runDir, name: "bench-chaos")
        let run = RunDirectory(directory)
        for dir in [run.url, run.logs, run.checkpoints] { try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true) }
        let spec = try writeSpec(in: directory)
        let ports = (coordinator: Int.random(in: 20_000..<30_000), proxy: Int.random(in: 30_000..<40_000))
        let cluster = try writeCluster(run, coordinatorPort: ports.coordinator)
        FileHandle.standardError.write(Data("""
            [chaos] \(trials) simulated trials × \(epochs) epochs × \(epochSeconds) s on \(workers) workers, a fault every \
            ~\(faultEvery) s; output in \(run.logs.path)\n
            """.utf8))
        var storm = ChaosStorm(command: self, directory: run, spec: spec, cluster: cluster, ports: ports)
        let started = ContinuousClock.now
        let finished = try storm.run()
        let wall = (ContinuousClock.now - started).seconds
        let result = try ChaosResult(run: run, workers: workers, faults: storm.faults, seconds: wall, finishedInTime: finished)
        if json {
            let data = try JSONSerialization.data(withJSONObject: result.object, options: [.prettyPrinted, .sortedKeys])
            print(String(decoding: data, as: UTF8.self))
        } else {
            print(result.table(self))
        }
        guard result.violations.isEmpty else {
            throw CLIError("chaos: \(result.violations.count) invariant(s) broken:\n" + result.violations.joined(separator: "\n"))
        }
    }

    /// Two conditions: `trials - 1` seeds of a learning rate that trains, and one trial whose learning rate diverges.
    private func writeSpec(in directory: URL) throws -> URL {
        let model = directory.appendingPathComponent("simulated.gguf")
        try Data("placeholder: factsweep bench chaos's simulated workers never open the model\n".utf8).write(to: model)
        let facts = try DefaultPaths.resolve(nil, default: DefaultPaths.data, what: "dataset")
        let spec: [String: Any] = [
            "name": "bench-chaos", "model": model.path, "data": facts.standardizedFileURL.path,
            "defaults": ["epochs": epochs, "eval_every": 5, "checkpoint_every": 2],
            "conditions": [
                ["name": "lora", "method": "lora", "lr": 1e-4, "seed": Array(0..<(trials - 1))],
                ["name": "diverging", "method": "lora", "lr": Double(SimulatedTrainer.divergingLearningRate) * 2, "seed": 0],
            ],
        ]
        let url = directory.appendingPathComponent("spec.json")
        try JSONSerialization.data(withJSONObject: spec, options: [.prettyPrinted, .sortedKeys]).write(to: url)
        return url
    }

    /// The run's timing for the coordinator and the workers: half-second heartbeats, a 10 s lease.
    private func writeCluster(_ run: RunDirectory, coordinatorPort: Int) throws -> URL {
        var timing = ProtocolTiming()
        timing.heartbeatInterval = .milliseconds(500)
        timing.leaseExpiry = .seconds(10)
        timing.reconnectInitial = .milliseconds(200)
        timing.reconnectMax = .seconds(2)
        let endpoint = "tcp://127.0.0.1:\(coordinatorPort)"
        let cluster = ClusterConfig(coordinator: .init(bind: endpoint, connect: endpoint), runDirectory: run.url.path,
                                    checkpointDirectory: run.checkpoints.path, hosts: [], timing: timing)
        let file = run.url.appendingPathComponent("cluster.json")
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try encoder.encode(cluster).write(to: file, options: .atomic)
        return file
    }
}

/// The processes of a chaos run and the faults done to them.
struct ChaosStorm {
    let command: ChaosBenchCommand
    let directory: RunDirectory
    let spec: URL
    let cluster: URL
    let ports: (coordinator: Int, proxy: Int)
    /// Faults injected, by kind.
    var faults: [String: Int] = [:]
    private var rng: SplitMix64
    private var coordinator: Process?
    private var proxy: Process?
    private var workers: [Process?] = []
    private var starts: [String: Int] = [:]

    init(command: ChaosBenchCommand, directory: RunDirectory, spec: URL, cluster: URL, ports: (coordinator: Int, proxy: Int)) {
        self.command = command; self.directory = directory; self.spec = spec; self.cluster = cluster; self.ports = ports
        rng = SplitMix64(seed: command.seed)
    }

    /// Starts everything, injects faults until every trial has ended (or the timeout), lets the coordinator
    /// finish and stops what is left. Whether the sweep finished in time.
    mutating func run() throws -> Bool {
        let deadline = ContinuousClock.now + .seconds(command.timeout)
        try startCoordinator()
        try startProxy()
        workers = try (0..<command.workers).map { try startWorker($0) }
        let store = try directory.open(leaseDuration: 10, logger: Logger(label: "factsweep.chaos"), mustExist: true)
        let coordinatorKillsDue = command.coordinatorKills
        var nextFault = ContinuousClock.now + .seconds(rng.exponential(mean: command.faultEvery))
        var restarts: [(at: ContinuousClock.Instant, what: Int)] = []  // -1: proxy, else a worker
        var finished = false
        while ContinuousClock.now < deadline {
            Thread.sleep(forTimeInterval: 0.1)
            for restart in restarts where restart.at <= .now {
                if restart.what < 0 { try startProxy() } else { workers[restart.what] = try startWorker(restart.what) }
            }
            restarts.removeAll { $0.at <= .now }
            if try store.audit().unfinished == 0 { finished = true; break }
            if let coordinator, !coordinator.isRunning { try startCoordinator() }
            guard ContinuousClock.now >= nextFault else { continue }
            nextFault = .now + .seconds(rng.exponential(mean: command.faultEvery))
            let roll = rng.unit()
            if roll < 0.12, faults["coordinator killed", default: 0] < coordinatorKillsDue {
                kill9(coordinator)
                faults["coordinator killed", default: 0] += 1
                try startCoordinator()
            } else if roll < 0.35, proxy?.isRunning == true {
                kill9(proxy)
                faults["link reset (proxy killed)", default: 0] += 1
                restarts.append((.now + .milliseconds(Int64(200 + rng.below(1300))), -1))
            } else {
                let index = rng.below(command.workers)
                guard let worker = workers[index], worker.isRunning else { continue }
                kill9(worker)
                faults["worker killed", default: 0] += 1
                restarts.append((.now + .milliseconds(Int64(100 + rng.below(900))), index))
            }
        }
        // The link comes back for the end: the coordinator shuts the workers down once every trial has ended.
        if proxy?.isRunning != true { try startProxy() }
        let end = ContinuousClock.now + .seconds(30)
        while coordinator?.isRunning == true, ContinuousClock.now < end { Thread.sleep(forTimeInterval: 0.1) }
        for process in workers + [proxy, coordinator] { kill9(process) }
        return finished
    }

    private func kill9(_ process: Process?) {
        guard let process, process.isRunning else { return }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    private mutating func launch(_ name: String, _ arguments: [String], environment: [String: String] = [:]) throws -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        process.arguments = arguments
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        let log = directory.logs.appendingPathComponent("\(name).log")
        if !FileManager.default.fileExists(atPath: log.path) { FileManager.default.createFile(atPath: log.path, contents: nil) }
        let handle = try FileHandle(forWritingTo: log)
        handle.seekToEndOfFile()
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
        starts[name, default: 0] += 1
        return process
    }

    private mutating func startCoordinator() throws {
        coordinator = try launch("coordinator", ["coordinator", spec.path, "--cluster", cluster.path, "--run-dir", directory.url.path])
        // The workers reach it through the proxy; wait until it listens (its run directory's lock is free again).
        let ready = ContinuousClock.now + .seconds(20)
        while ContinuousClock.now < ready, coordinator?.isRunning == true {
            if let text = try? String(contentsOf: directory.logs.appendingPathComponent("coordinator.log"), encoding: .utf8),
               text.components(separatedBy: "listening on").count > starts["coordinator", default: 0] { return }
            Thread.sleep(forTimeInterval: 0.05)
        }
    }

    private mutating func startProxy() throws {
        proxy = try launch("proxy", ["bench", "proxy", "--listen", "\(ports.proxy)", "--to", "\(ports.coordinator)"])
        Thread.sleep(forTimeInterval: 0.1)
    }

    /// libfaketime, for a worker whose clocks are wrong; nil where it is not installed.
    static let faketime = ["/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1", "/usr/lib/faketime/libfaketime.so.1",
                           "/usr/local/lib/faketime/libfaketime.so.1"].first { FileManager.default.fileExists(atPath: $0) }

    private mutating func startWorker(_ index: Int) throws -> Process {
        var environment = [DeliveryFaults.environmentVariable: "duplicate=\(command.messageFaults),reorder=\(command.messageFaults)"]
        // Worker 0's wall and monotonic clocks run three hours behind: nothing in the protocol may depend on them.
        if index == 0, let faketime = Self.faketime {
            environment["LD_PRELOAD"] = faketime
            environment["FAKETIME"] = "-3h"
            if starts["worker-0"] == nil { faults["worker with its clock 3 h behind", default: 0] += 1 }
        }
        return try launch("worker-\(index)", [
            "worker", "--connect", "tcp://127.0.0.1:\(ports.proxy)", "--id", "chaos-\(index)", "--threads", "1",
            "--simulate", "\(command.epochSeconds)", "--checkpoint-dir", directory.checkpoints.path, "--cluster", cluster.path,
            "--delivery-log", directory.logs.appendingPathComponent("worker-\(index).delivery").path,
        ], environment: environment)
    }

    /// Process starts by name (coordinator, proxy, worker-N), first starts included.
    var processStarts: [String: Int] { starts }
}

extension SplitMix64 {
    /// An integer in [0, n) for the fault schedule (n < 1 counts as 1).
    mutating func below(_ n: Int) -> Int { Int(below(UInt64(max(1, n)))) }
    /// A wait with this mean, exponentially distributed.
    mutating func exponential(mean: Double) -> Double { -mean * log(max(1e-12, 1 - unit())) }
}

/// What a chaos run did and found.
struct ChaosResult {
    let audit: RunAudit
    let faults: [String: Int]
    let deliveryEvents: [String: Int]
    let acknowledged: Int
    /// Acknowledged progress of trials that ended done or diverged, missing from the database.
    let lostAcknowledged: [DeliveryLog.Acknowledged]
    /// Acknowledged progress of failed trials that is not in the database: epochs after the checkpoint a
    /// lost attempt was requeued from, which the store drops for the next attempt to train again.
    let rewoundAcknowledged: Int
    let coordinator: CoordinatorStatistics?
    let seconds: Double
    let finishedInTime: Bool

    init(run: RunDirectory, workers: Int, faults: [String: Int], seconds: Double, finishedInTime: Bool) throws {
        let store = try run.open(leaseDuration: 10, logger: Logger(label: "factsweep.chaos"), mustExist: true)
        let audit = try store.audit()
        self.audit = audit
        var acknowledged = Set<DeliveryLog.Acknowledged>(), events: [String: Int] = [:]
        for index in 0..<workers {
            let file = run.logs.appendingPathComponent("worker-\(index).delivery")
            guard FileManager.default.fileExists(atPath: file.path) else { continue }
            let log = try DeliveryLog.read(file)
            acknowledged.formUnion(log.acknowledged)
            events.merge(log.events, uniquingKeysWith: +)
        }
        self.acknowledged = acknowledged.count
        let missing = acknowledged.filter { !audit.recorded.contains(.init(trial: $0.trial, epoch: $0.epoch)) }
        lostAcknowledged = missing.filter { audit.completed.contains($0.trial) }.sorted { ($0.trial, $0.epoch) < ($1.trial, $1.epoch) }
        rewoundAcknowledged = missing.count - lostAcknowledged.count
        deliveryEvents = events
        coordinator = try? CoordinatorStatistics.read(from: run.statistics)
        self.faults = faults; self.seconds = seconds; self.finishedInTime = finishedInTime
    }

    /// Every broken invariant, in words; empty when the run kept them all.
    var violations: [String] {
        var found: [String] = []
        if !finishedInTime || audit.unfinished > 0 { found.append("\(audit.unfinished) trials did not end") }
        found += audit.brokenEpochs.map { "epochs not recorded exactly once: \($0)" }
        found += lostAcknowledged.prefix(20).map { "acknowledged but not in run.db: trial \($0.trial) epoch \($0.epoch)" }
        if audit.trialsByStatus["diverged", default: 0] != 1 { found.append("expected 1 diverged trial: \(audit.trialsByStatus)") }
        return found
    }

    var object: [String: Any] {
        [
            "seconds": seconds, "trials_by_status": audit.trialsByStatus, "attempts_by_outcome": audit.attemptsByOutcome,
            "epochs_recorded": audit.epochsRecorded, "faults": faults, "worker_delivery": deliveryEvents,
            "acknowledged_progress": acknowledged, "acknowledged_missing": lostAcknowledged.count,
            "acknowledged_rewound_in_failed_trials": rewoundAcknowledged,
            "last_coordinator_duplicates_refused": coordinator?.duplicateResults ?? NSNull(),
            "last_coordinator_gaps_refused": coordinator?.gapsRefused ?? NSNull(),
            "last_coordinator_lost_assigns": coordinator?.lostAssigns ?? NSNull(),
            "violations": violations,
        ]
    }

    func table(_ command: ChaosBenchCommand) -> String {
        func list(_ counts: [String: Int]) -> String {
            counts.isEmpty ? "none" : counts.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
        }
        var lines = [
            "\(command.trials) trials × \(command.epochs) epochs × \(command.epochSeconds) s, \(command.workers) workers: \(String(format: "%.1f", seconds)) s",
            "faults injected: \(list(faults))",
            "worker-side delivery faults and resends: \(list(deliveryEvents))",
            "trials by status: \(list(audit.trialsByStatus))",
            "attempts by outcome: \(list(audit.attemptsByOutcome))",
            "epochs recorded: \(audit.epochsRecorded); progress acknowledged to workers: \(acknowledged), missing from run.db: "
                + "\(lostAcknowledged.count) (and \(rewoundAcknowledged) of failed trials, dropped by a requeue to their checkpoint)",
        ]
        if let coordinator {
            lines.append("last coordinator: duplicates refused \(coordinator.duplicateResults), gaps refused \(coordinator.gapsRefused), "
                         + "lost assigns \(coordinator.lostAssigns), slots reconciled \(coordinator.reconciledSlots)")
        }
        let broken = violations
        lines.append(broken.isEmpty ? "invariants: all hold (every trial ended, every epoch exactly once, nothing acknowledged lost in a completed trial)"
                                    : "INVARIANTS BROKEN:\n  " + broken.joined(separator: "\n  "))
        return lines.joined(separator: "\n")
    }
}
