// `factsweep run`: a sweep on this machine — the coordinator plus N local
// worker processes — resuming when the run directory already holds it.
import ArgumentParser
import Coordinator
import Core
import Foundation
import Logging
import Protocol

struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run SPEC with a coordinator and N local worker processes; resumes if --run-dir already holds it.")

    @Argument(help: "The sweep specification (JSON; see docs/sweep-spec.md).")
    var spec: String

    @Option(name: .long, help: "Local worker processes.")
    var workers = 2

    @Option(name: .long, help: "Threads per worker (the default splits this machine's cores).")
    var threadsPerWorker: Int?

    @Option(name: .long, help: "Run directory (default runs/<sweep name>).")
    var runDir: String?

    @OptionGroup var timingOptions: TimingOptions

    @OptionGroup var simulation: SimulationOptions

    @OptionGroup var modelCache: ModelCacheOptions

    @Flag(name: .long, help: "Also serve the live dashboard (see factsweep serve) and print its URL.")
    var serve = false

    @OptionGroup var dashboard: DashboardOptions

    /// The niceness of local workers (the coordinator keeps its own, normally 0).
    static let workerNiceness: Int32 = 5

    func validate() throws {
        guard workers >= 1 else { throw ValidationError("--workers must be at least 1") }
        if let t = threadsPerWorker { try checkThreadCount(t, "--threads-per-worker") }
    }

    func run() throws {
        let plan = try loadPlan(spec)
        let runDirectory = RunDirectory(URL(fileURLWithPath: runDir ?? "runs/\(plan.name)"))
        // Before anything is written: a coordinator already serving this run makes this one refuse.
        let lock = try RunDirectoryLock(runDirectory.url)
        defer { withExtendedLifetime(lock) {} }
        let timing = timingOptions.timing
        let logger = Logger(label: "factsweep.run")
        let store = try runDirectory.open(leaseDuration: timingOptions.lease, retryBackoff: timing.retryBackoff, logger: logger)
        let added = try submit(plan, spec: spec, to: runDirectory, store: store)
        let server = try CoordinatorServer(store: store, context: try ZMQContext(), bind: "tcp://127.0.0.1:*", timing: timing,
                                           checkpointDirectory: runDirectory.checkpoints, runDirectory: runDirectory.url, logger: logger)
        if serve { _ = try dashboard.start(runDirectory.database.path, logger: logger) }
        let threads = threadsPerWorker ?? Message.threads(fromCores: ProcessInfo.processInfo.activeProcessorCount / workers)
        FileHandle.standardError.write(Data("""
            sweep \(plan.name): \(plan.trials.count) trials (\(added.newTrials) new) in \(runDirectory.url.path)
            coordinator on \(server.boundEndpoint); starting \(workers) workers × \(threads) threads (logs in \(runDirectory.logs.path))\n
            """.utf8))
        // The workers read the run's timing from a cluster.json in the run directory.
        let clusterFile = runDirectory.url.appendingPathComponent("cluster.json")
        let cluster = ClusterConfig(coordinator: .init(bind: server.boundEndpoint, connect: server.boundEndpoint),
                                    runDirectory: runDirectory.url.path, checkpointDirectory: runDirectory.checkpoints.path,
                                    hosts: [.init(host: "localhost", workers: workers, threadsPerWorker: threads)], timing: timing)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try encoder.encode(cluster).write(to: clusterFile, options: .atomic)
        var children: [Process] = []
        for i in 0..<workers {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
            process.arguments = ["worker", "--connect", server.boundEndpoint, "--threads", "\(threads)", "--id", "\(plan.name)-\(i)",
                                 "--checkpoint-dir", runDirectory.checkpoints.path, "--cluster", clusterFile.path,
                                 "--stats-file", runDirectory.logs.appendingPathComponent("worker-\(i).stats.json").path]
            process.arguments? += simulation.workerArguments + modelCache.workerArguments
            // Appended to: a resumed run keeps what its workers logged before.
            let log = runDirectory.logs.appendingPathComponent("worker-\(i).log")
            if !FileManager.default.fileExists(atPath: log.path) { _ = FileManager.default.createFile(atPath: log.path, contents: nil) }
            let handle = try FileHandle(forWritingTo: log)
            handle.seekToEndOfFile()
            process.standardOutput = handle
            process.standardError = handle
            try process.run()
            // Below the coordinator's priority: every worker waits on the coordinator, which needs little CPU
            // but needs it at once; local workers that train on every core must not keep it waiting.
            _ = setpriority(__priority_which_t(PRIO_PROCESS.rawValue), id_t(process.processIdentifier), Self.workerNiceness)
            children.append(process)
        }
        let stop = SignalWatch()
        let display = StatusDisplay(stream: .standardError)
        try server.serve(untilComplete: true, stop: { stop.isSet || children.allSatisfy { !$0.isRunning } }, tick: { display.show($0) })
        if stop.isSet { server.shutdownWorkers(reason: "run interrupted") }
        let deadline = Date().addingTimeInterval(30)
        while children.contains(where: \.isRunning) && Date() < deadline { usleep(100_000) }
        for child in children where child.isRunning { child.terminate() }
        server.close()
        try server.statistics.write(to: runDirectory.statistics)
        let status = try store.status()
        display.show(status, final: true)
        FileHandle.standardError.write(Data("results: \(runDirectory.database.path) (sqlite3; see docs/schema.md)\n".utf8))
        if stop.isSet { throw ExitCode(130) }
        if children.allSatisfy({ !$0.isRunning }) && status.trialsByStatus.filter({ !$0.key.isTerminal }).values.reduce(0, +) > 0 {
            FileHandle.standardError.write(Data("every worker exited before the sweep finished: see \(runDirectory.logs.path)\n".utf8))
            throw ExitCode(1)
        }
    }
}
