// `factsweep worker`: a sweep worker process — connects to a coordinator and
// runs the trials it is given, one at a time, until shut down or signalled.
import ArgumentParser
import Coordinator
import Core
import Foundation
import Trial
import Logging
import Protocol
import Worker

struct WorkerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "worker",
        abstract: "Run sweep trials for a coordinator, one at a time.",
        discussion: """
            SIGTERM or SIGINT stops the running trial after its epoch, hands its checkpoint back to the coordinator \
            and exits with status 0 once that is acknowledged (or after a short wait). A second SIGINT exits at once.
            """)

    @Option(name: .long, help: "The coordinator's endpoint, e.g. tcp://head:5555.")
    var connect: String?

    @Option(name: .long, help: "The run directory on a shared filesystem: wait for the coordinator's address in DIR/coordinator.json and follow it when the coordinator restarts; checkpoints go to DIR/checkpoints.")
    var runDir: String?

    @Option(name: .long, help: "A coordinator address file (coordinator.json) to wait for and follow, as --run-dir does.")
    var connectFile: String?

    @Option(name: .long, help: "Threads for BLAS and the other ops (default: SLURM_CPUS_PER_TASK in a Slurm job, else every core).")
    var threads: Int?

    @OptionGroup var modelCache: ModelCacheOptions

    @Option(name: .long, help: "Worker id, unique in the sweep (default: slurm-<job>_<task> in a Slurm job, else <hostname>-<pid>).")
    var id: String?

    @Option(name: .long, help: "Trials checkpoint into DIR/<trial>/attempt-<id>/ (default: cluster.json's checkpoint_directory, else --run-dir's checkpoints, else ./checkpoints).")
    var checkpointDir: String?

    @Option(name: .long, help: "cluster.json (docs/cluster.md): its timing and checkpoint_directory apply.")
    var cluster: String?

    @Flag(name: .long, inversion: .prefixedNo,
          help: "Whether the coordinator's host sees the checkpoint directory: checkpoints go by path, else inline (adapters only). Always on for a coordinator on this host.")
    var sharedCheckpoints = true

    @OptionGroup var keys: WorkerKeyOptions

    @OptionGroup var simulation: SimulationOptions

    @Option(name: .long, help: ArgumentHelp(
        "Append a line per acknowledged progress (and per injected delivery fault) to FILE (the chaos benchmark).",
        visibility: .hidden))
    var deliveryLog: String?

    @Option(name: .long, help: "Write this worker's counters (attempts, reconnects, ready-to-assign waits, peak RSS, CPU time) as JSON to FILE at exit.")
    var statsFile: String?

    func validate() throws {
        if let threads { try checkThreadCount(threads, "--threads") }
        if let id, let problem = WorkerIdentity.problem(id) { throw ValidationError("--id: \(problem)") }
        guard [connect, runDir, connectFile].compactMap({ $0 }).count == 1 else {
            throw ValidationError("give exactly one of --connect, --run-dir and --connect-file")
        }
        if let connect { guard connect.contains("://") else { throw ValidationError("--connect needs an endpoint such as tcp://HOST:PORT") } }
    }

    func run() throws {
        let cluster = try self.cluster.map { try ClusterConfig.load(URL(fileURLWithPath: $0)) }
        let run = runDir.map { RunDirectory(URL(fileURLWithPath: $0)) }
        var logger = Logger(label: "factsweep.worker")
        logger.logLevel = .info
        let slurm = SlurmEnvironment()
        let addressFile = connectFile.map { URL(fileURLWithPath: $0) } ?? run?.coordinatorAddress
        let location: CoordinatorLocation
        if let addressFile {
            guard let found = try CoordinatorLocation.waiting(for: addressFile, log: { logger.info("\($0)") }) else { return }
            location = found
        } else {
            location = CoordinatorLocation(endpoint: connect ?? "")
        }
        // A default beyond what a hello may declare is cut to it, rather than refused by the coordinator.
        let threads = self.threads ?? Message.threads(fromCores: slurm?.cpusPerTask ?? ProcessInfo.processInfo.activeProcessorCount)
        let directory = checkpointDir ?? cluster?.checkpointDirectory ?? run?.checkpoints.path ?? "checkpoints"
        var settings = WorkerSettings(
            endpoint: location.endpoint, workerID: id ?? slurm?.workerID ?? WorkerSettings.defaultWorkerID(), threads: threads,
            checkpointDirectory: URL(fileURLWithPath: directory),
            sharedCheckpoints: sharedCheckpoints || WorkerSettings.coordinatorIsLocal(location.endpoint),
            timing: cluster?.timing ?? location.timing ?? ProtocolTiming(), security: try keys.security(cluster: cluster, published: location.publicKey))
        settings.slurm = slurm?.task
        settings.locateCoordinator = location.locate
        // Test and benchmark use only (docs/benchmarks.md, "Chaos"): duplicated and reordered results.
        if let faults = ProcessInfo.processInfo.environment[DeliveryFaults.environmentVariable] {
            settings.faults = try DeliveryFaults.parse(faults)
        }
        settings.deliveryLog = try deliveryLog.map { try DeliveryLog(URL(fileURLWithPath: $0)) }
        let (cacheBudget, budgetSource) = modelCache.budget(threads: threads)
        if simulation.trainer == nil {
            logger.info("idle models kept within the model cache's budget", metadata: ["mib": "\(cacheBudget >> 20)", "from": "\(budgetSource)"])
        }
        let runner: any TrialRunning = simulation.trainer
            ?? TrialRunner(cache: ModelCache(logger: logger, idleBudget: cacheBudget), context: ComputeContext.forProcess(threads: threads),
                           logger: logger)
        let client = WorkerClient(settings, context: try ZMQContext(), runner: runner, logger: logger)
        // SIGTERM/SIGINT release the trial (checkpoint, then a retryable failure); a second SIGINT exits at once.
        let signals = SignalWatch { number in client.release(reason: "released by \(number == SIGTERM ? "SIGTERM" : "SIGINT")") }
        let exit = try client.run()
        withExtendedLifetime(signals) {}
        if let statsFile { try writeStatistics(client, to: URL(fileURLWithPath: statsFile)) }
        switch exit {
        case .shutdown(let reason): logger.info("coordinator shut this worker down", metadata: ["reason": "\(reason)"])
        case .released(let reason): logger.info("released", metadata: ["reason": "\(reason)"])
        case .refused(let reason):
            FileHandle.standardError.write(Data("factsweep worker: \(reason)\n".utf8))
            throw ExitCode(1)
        }
    }

    private func writeStatistics(_ client: WorkerClient, to file: URL) throws {
        let statistics = client.statistics
        let object: [String: Any] = [
            "worker_id": client.settings.workerID, "attempts_started": statistics.attemptsStarted,
            "reconnects": statistics.reconnects, "ready_to_assign_seconds": statistics.readyToAssignSeconds,
            "peak_rss_bytes": ResourceUsage.peakResidentBytes, "cpu_seconds": ResourceUsage.cpuSeconds,
        ]
        try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]).write(to: file, options: .atomic)
    }
}
