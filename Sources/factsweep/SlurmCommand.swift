// `factsweep slurm`: a sweep on a Slurm cluster — the coordinator as one job
// (or on this host), the workers as a job array that finds it through the run
// directory. Writes the batch scripts into RUN/slurm/, submits them with
// sbatch, and records the job ids there for `--cancel` and for a resubmission.
import ArgumentParser
import Coordinator
import Foundation
import Protocol

struct SlurmCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "slurm",
        abstract: "Run SPEC on a Slurm cluster: the coordinator as a job, the workers as a job array (see docs/cluster.md).",
        discussion: """
            The scripts go to RUN/slurm/ (--dry-run prints them without submitting). Running the same command again \
            resubmits what is no longer in the queue: a coordinator job that died resumes from RUN/run.db and the \
            workers still running reconnect to it. RUN must be on a filesystem that every node sees.
            """)

    @Argument(help: "The sweep specification (JSON; see docs/sweep-spec.md).")
    var spec: String?

    @Option(name: .long, help: "Worker array tasks.")
    var workers = 2

    @Option(name: .long, help: "CPUs per worker task (--cpus-per-task; each worker trains with that many threads).")
    var cpusPerWorker = 1

    @Option(name: .long, help: "Slurm partition (sbatch --partition).")
    var partition: String?

    @Option(name: .long, help: "Time limit of each job (sbatch --time, e.g. 12:00:00).")
    var time: String?

    @Option(name: .long, help: "Account to charge (sbatch --account).")
    var account: String?

    @Option(name: .long, help: "Run directory on the shared filesystem (default runs/<sweep name>).")
    var runDir: String?

    @Flag(name: .long, help: "Write the batch scripts and print them; submit nothing.")
    var dryRun = false

    @Flag(name: .long, help: "Run the coordinator here (this process becomes it) instead of as a Slurm job.")
    var coordinatorHere = false

    @Option(name: .long, help: "Cancel the Slurm jobs of the run in this directory, and nothing else.")
    var cancel: String?

    @OptionGroup var timingOptions: TimingOptions

    @OptionGroup var simulation: SimulationOptions

    @OptionGroup var modelCache: ModelCacheOptions

    func validate() throws {
        if cancel != nil {
            guard spec == nil else { throw ValidationError("--cancel RUN takes no SPEC") }
            return
        }
        guard spec != nil else { throw ValidationError("give SPEC (or --cancel RUN)") }
        guard workers >= 1 else { throw ValidationError("--workers must be at least 1") }
        try checkThreadCount(cpusPerWorker, "--cpus-per-worker")
    }

    func run() throws {
        if let cancel { return try cancelJobs(RunDirectory(absoluteURL(cancel))) }
        guard let spec else { return }
        let plan = try loadPlan(spec)
        let runDirectory = RunDirectory(absoluteURL(runDir ?? "runs/\(plan.name)"))
        let folder = runDirectory.slurmFolder
        for dir in [runDirectory.url, runDirectory.logs, runDirectory.checkpoints, folder] {
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        }
        let timing = timingOptions.timing
        // The coordinator binds every interface on a free port and publishes a reachable address in
        // RUN/coordinator.json; the port changes when it is resubmitted and the workers follow.
        // Off loopback, so CURVE (docs/security.md): the sweep's own keys, 0600 in RUN/keys on the shared filesystem.
        let keys = try SweepKeys.ensure(runDirectory)
        let cluster = ClusterConfig(coordinator: .init(bind: "tcp://0.0.0.0:*", connect: ""), runDirectory: runDirectory.url.path,
                                    checkpointDirectory: runDirectory.checkpoints.path, hosts: [], timing: timing,
                                    security: .init(coordinatorKey: keys.coordinatorKey.path, allowList: keys.allowList.path))
        let clusterFile = folder.appendingPathComponent("cluster.json")
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try encoder.encode(cluster).write(to: clusterFile, options: .atomic)

        let scripts = SlurmScripts(sweep: plan.name, factsweep: Self.executable,
                                   spec: absoluteURL(spec).path, runDirectory: runDirectory, cluster: clusterFile.path,
                                   workers: workers, cpusPerWorker: cpusPerWorker, partition: partition, time: time, account: account,
                                   simulate: simulation.simulate, modelCacheArguments: modelCache.workerArguments)
        let coordinatorScript = folder.appendingPathComponent("coordinator.sbatch")
        let workersScript = folder.appendingPathComponent("workers.sbatch")
        try scripts.coordinatorScript.write(to: coordinatorScript, atomically: true, encoding: .utf8)
        try scripts.workersScript.write(to: workersScript, atomically: true, encoding: .utf8)
        if dryRun {
            print("# \(coordinatorScript.path)\(coordinatorHere ? " (not submitted: --coordinator-here runs it on this host)" : "")")
            print(scripts.coordinatorScript)
            print("# \(workersScript.path)")
            print(scripts.workersScript)
            return
        }

        // What is still queued or running of earlier submissions is kept: a resubmission replaces only what died.
        var jobs = try SlurmJobs.read(folder)
        let live = try Sbatch.liveJobs(jobs.all)
        let coordinatorAlive = jobs.coordinators.contains(where: live.contains)
        let workersAlive = jobs.workerArrays.contains(where: live.contains)
        if workersAlive {
            say("workers of \(runDirectory.url.path) still queued or running (job \(jobs.workerArrays.filter(live.contains).joined(separator: ", "))); not resubmitted")
        } else {
            let id = try jobs.submit(workersScript, as: \.workerArrays, recordingIn: folder)
            say("submitted workers: job array \(id) (\(workers) tasks × \(cpusPerWorker) CPUs)")
        }
        if coordinatorHere {
            guard !coordinatorAlive else {
                throw SlurmError("a coordinator job of this run is still queued or running (\(jobs.coordinators.filter(live.contains).joined(separator: ", "))): cancel it first")
            }
            say("coordinator on this host; logs on standard error")
            try becomeCoordinator(scripts.coordinatorArguments)
        } else if coordinatorAlive {
            say("coordinator job \(jobs.coordinators.filter(live.contains).joined(separator: ", ")) still queued or running; not resubmitted")
        } else {
            let id = try jobs.submit(coordinatorScript, as: \.coordinators, recordingIn: folder)
            say("submitted coordinator: job \(id); follow with: factsweep status \(runDirectory.url.path)")
        }
    }

    private func cancelJobs(_ runDirectory: RunDirectory) throws {
        let jobs = try SlurmJobs.read(runDirectory.slurmFolder)
        guard !jobs.all.isEmpty else {
            throw SlurmError("no Slurm jobs recorded in \(runDirectory.slurmFolder.path)/jobs.json: was the sweep started with factsweep slurm?")
        }
        let live = try Sbatch.liveJobs(jobs.all)
        guard !live.isEmpty else { return say("no job of \(runDirectory.url.path) is queued or running") }
        // The workers first, while the coordinator still takes their checkpoints: each hands its trial back
        // on SIGTERM, so the sweep resumes where it stopped. Then the coordinator.
        let workers = jobs.workerArrays.filter(live.contains)
        if !workers.isEmpty {
            try Sbatch.run("scancel", workers)
            say("cancelled workers \(workers.joined(separator: ", ")); waiting for them to hand back their trials")
            let deadline = Date().addingTimeInterval(Self.workerStopSeconds)
            while Date() < deadline, !(try Sbatch.liveJobs(workers).isEmpty) { Thread.sleep(forTimeInterval: 1) }
        }
        let coordinators = jobs.coordinators.filter(live.contains)
        if !coordinators.isEmpty {
            try Sbatch.run("scancel", coordinators)
            say("cancelled coordinator \(coordinators.joined(separator: ", "))")
        }
        say("resubmit with the same factsweep slurm command to go on from \(runDirectory.database.path)")
    }

    /// How long --cancel waits for the workers before it cancels the coordinator: the 90 s of warning the
    /// array asks for before its time limit, plus Slurm's default KillWait of 30 s.
    static let workerStopSeconds: TimeInterval = 120

    /// Replaces this process with `factsweep coordinator …`, so that signals and the exit status are the coordinator's own.
    private func becomeCoordinator(_ arguments: [String]) throws {
        let executable = Self.executable
        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        execv(executable, argv)
        throw SlurmError("cannot run \(executable) coordinator: \(String(cString: strerror(errno)))")
    }

    /// This executable's absolute path, also when it was found on PATH (the batch scripts run it on other nodes).
    static var executable: String {
        (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"))
            ?? URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().path
    }

    private func say(_ text: String) { FileHandle.standardError.write(Data((text + "\n").utf8)) }

    private func absoluteURL(_ path: String) -> URL { URL(fileURLWithPath: path).standardizedFileURL }
}

extension RunDirectory {
    /// `slurm/`: the batch scripts, the coordinator's cluster.json and `jobs.json`.
    var slurmFolder: URL { url.appendingPathComponent("slurm") }
}
