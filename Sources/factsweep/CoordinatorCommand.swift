// `factsweep coordinator`: serve a sweep to workers that connect over ZeroMQ.
import ArgumentParser
import Coordinator
import Core
import Foundation
import Logging
import Protocol
import Store

struct CoordinatorCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "coordinator",
        abstract: "Serve SPEC's trials to workers (factsweep worker --connect …) until every trial has ended.")

    @Argument(help: "The sweep specification (JSON; see docs/sweep-spec.md).")
    var spec: String

    @Option(name: .long, help: "cluster.json with the bind address, run directory and timing.")
    var cluster: String?

    @Option(name: .long, help: "Bind address (overrides cluster.json; default tcp://0.0.0.0:5555).")
    var bind: String?

    @Option(name: .long, help: "Run directory (overrides cluster.json; default runs/<sweep name>).")
    var runDir: String?

    @Option(name: .long, help: "The host name workers reach this coordinator by, published in RUN/coordinator.json for a wildcard bind address (default: this host's name).")
    var advertise: String?

    @Flag(name: .long, help: "On SIGTERM/SIGINT leave the workers running, to reconnect to the next coordinator of this run (a resubmitted Slurm job) instead of shutting them down.")
    var leaveWorkers = false

    @Option(name: .long, help: "Seconds before a trial's next attempt after one that counted against its retry limit (doubling per counted attempt; overrides cluster.json's retry_backoff_initial_seconds).")
    var retryBackoff: Double?

    @OptionGroup var keys: CoordinatorKeyOptions

    func validate() throws {
        if let retryBackoff { guard retryBackoff > 0 else { throw ValidationError("--retry-backoff must be positive") } }
    }

    func run() throws {
        let cluster = try self.cluster.map { try ClusterConfig.load(URL(fileURLWithPath: $0)) }
        let plan = try loadPlan(spec)
        let runDirectory = RunDirectory(URL(fileURLWithPath: runDir ?? cluster?.runDirectory ?? "runs/\(plan.name)"))
        var timing = cluster?.timing ?? ProtocolTiming()
        if let retryBackoff { timing.retryBackoffInitial = .milliseconds(Int64(retryBackoff * 1000)) }
        let logger = Logger(label: "factsweep.coordinator")
        let bind = self.bind ?? cluster?.coordinator.bind ?? "tcp://0.0.0.0:5555"
        // Checked before the run directory is touched: a refused start leaves nothing behind.
        let security = try keys.security(bind: bind, cluster: cluster, logger: logger)
        // Before anything is written: a second coordinator on this run refuses here.
        let lock = try RunDirectoryLock(runDirectory.url)
        defer { withExtendedLifetime(lock) {} }
        let store = try runDirectory.open(leaseDuration: CoordinatorServer.seconds(timing.leaseExpiry),
                                           retryBackoff: timing.retryBackoff, logger: logger)
        let added = try submit(plan, spec: spec, to: runDirectory, store: store)
        FileHandle.standardError.write(Data("sweep \(plan.name): \(plan.trials.count) trials (\(added.newTrials) new), database \(runDirectory.database.path)\n".utf8))
        // Checkpoints travel by path only inside the run's checkpoint directory (docs/security.md).
        let checkpoints = cluster?.checkpointDirectory.map { URL(fileURLWithPath: $0) } ?? runDirectory.checkpoints
        let server = try CoordinatorServer(store: store, context: try ZMQContext(), bind: bind, timing: timing,
                                           security: security, checkpointDirectory: checkpoints, runDirectory: runDirectory.url,
                                           logger: logger)
        // Workers started with --run-dir find this coordinator (and follow it after a restart) by this file.
        // With keys, the public key travels in the same file (0600), so Slurm workers need only their own key.
        var address = CoordinatorAddress(endpoint: CoordinatorAddress.reachable(server.boundEndpoint, host: advertise ?? ProcessInfo.processInfo.hostName),
                                         publicKey: security?.keyPair.publicKey, host: ProcessInfo.processInfo.hostName, pid: getpid(), state: .serving, timing: timing)
        try CoordinatorAddressFile.write(address, to: runDirectory.coordinatorAddress)
        FileHandle.standardError.write(Data("listening on \(server.boundEndpoint); workers connect to \(address.endpoint) (\(runDirectory.coordinatorAddress.path))\n".utf8))
        let stop = SignalWatch()
        try server.serve(untilComplete: true, stop: { stop.isSet })
        if stop.isSet && !leaveWorkers { server.shutdownWorkers(reason: "coordinator stopped") }
        server.close()
        if !stop.isSet {
            address.state = .finished
            try CoordinatorAddressFile.write(address, to: runDirectory.coordinatorAddress)
        }
        try server.statistics.write(to: runDirectory.statistics)
    }
}

/// Loads a sweep plan, printing every problem and exiting with status 2 when invalid. A spec that took
/// a while to read (a grid of tens of thousands of trials) says so when read.
func loadPlan(_ path: String) throws -> SweepPlan {
    let clock = ContinuousClock(), start = clock.now
    do {
        let plan = try SweepPlan.load(URL(fileURLWithPath: path))
        let elapsed = clock.now - start
        if elapsed >= StartProgress.worthSaying {
            FileHandle.standardError.write(Data("sweep \(plan.name): \(plan.trials.count) trials read from \(path) in \(StartProgress.seconds(elapsed)) s\n".utf8))
        }
        return plan
    } catch {
        FileHandle.standardError.write(Data("\(error)\n".utf8))
        throw ExitCode(2)
    }
}

/// `RunDirectory.submit` with the spec at `path`. A plan large enough for the check of the run's stored
/// trials and the insert to take a while (`StartProgress.largePlan` trials) says so before, and how long
/// it took after: nothing else is printed until the coordinator listens.
func submit(_ plan: SweepPlan, spec path: String, to runDirectory: RunDirectory, store: RunStore) throws -> AddedSweep {
    let spec = try Data(contentsOf: URL(fileURLWithPath: path))
    let large = plan.trials.count >= StartProgress.largePlan
    if large {
        FileHandle.standardError.write(Data("sweep \(plan.name): checking \(runDirectory.database.path) and adding its \(plan.trials.count) trials …\n".utf8))
    }
    let clock = ContinuousClock(), start = clock.now
    let added = try runDirectory.submit(plan, spec: spec, to: store)
    if large {
        FileHandle.standardError.write(Data("sweep \(plan.name): checked and added in \(StartProgress.seconds(clock.now - start)) s\n".utf8))
    }
    return added
}

/// When a coordinator's start says what it is doing: phases that take half a second or more.
enum StartProgress {
    static let worthSaying = Duration.milliseconds(500)

    /// Plans of this many trials take about half a second to check against a run database and add (a
    /// 100,000-trial plan a few seconds: docs/benchmarks.md, "Starting a coordinator on 100,000 trials").
    static let largePlan = 10_000

    /// `duration` in seconds, to a tenth.
    static func seconds(_ duration: Duration) -> String {
        String(format: "%.1f", Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18)
    }
}
