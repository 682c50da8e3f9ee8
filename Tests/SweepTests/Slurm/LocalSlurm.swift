// LocalSlurm: the single-node Slurm of scripts/slurm-local.sh for the tests
// that run sweeps under real Slurm — started before a test and stopped after;
// a Slurm that cannot start is the test's failure, never a skip.
import Foundation
import GRDB
import TestSupport

struct LocalSlurm {
    /// The environment Slurm's commands (and factsweep slurm) need: SLURM_CONF.
    let environment: [String: String]

    struct CannotStart: Error, CustomStringConvertible {
        let description: String
    }

    /// A command's exit status and output.
    struct ShellResult {
        let status: Int32
        let stdout: String
        let stderr: String
    }

    /// Runs `scripts/slurm-local.sh start`; throws with its output when Slurm does not come up.
    static func start() throws -> LocalSlurm {
        let result = try shell(["scripts/slurm-local.sh", "start"])
        guard result.status == 0, let line = result.stdout.split(separator: "\n").last(where: { $0.hasPrefix("SLURM_CONF=") }) else {
            throw CannotStart(description: "scripts/slurm-local.sh start failed (status \(result.status)): \(result.stderr)\(result.stdout)")
        }
        return LocalSlurm(environment: ["SLURM_CONF": String(line.dropFirst("SLURM_CONF=".count))])
    }

    /// Stops what `start` started.
    func stop() { _ = try? Self.shell(["scripts/slurm-local.sh", "stop"]) }

    /// Runs a Slurm command (squeue, scancel, scontrol) with this cluster's configuration.
    @discardableResult
    func run(_ arguments: [String]) throws -> ShellResult {
        try Self.shell(["/usr/bin/env"] + arguments, environment: environment)
    }

    /// `factsweep ARGS` with this cluster's configuration.
    func factsweep(_ arguments: [String]) throws -> ProcessResult { try FactSweepBinary.run(arguments, environment: environment) }

    /// Ids (`123`, `123_4`) of this run's jobs still in the queue.
    func queued(_ jobs: [String]) throws -> [String] {
        let lines = try run(["squeue", "--noheader", "--format=%F %i"]).stdout.split(separator: "\n")
        return lines.compactMap { line in
            let fields = line.split(separator: " ").map(String.init)
            return fields.count == 2 && jobs.contains(fields[0]) ? fields[1] : nil
        }
    }

    /// Polls `condition` every 0.25 s until it holds or `seconds` pass; returns whether it held.
    static func wait(seconds: Double, _ condition: () throws -> Bool) rethrows -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if try condition() { return true }
            usleep(250_000)
        }
        return try condition()
    }

    /// Runs a command to its end (`Spawned`: posix_spawn and our own waitpid), its output going to files, at
    /// most `timeout` seconds (then it and its descendants are killed). Not Foundation's Process: its wait
    /// missed the exit of slurm-local.sh (whose daemons outlive it) and hung with the script a zombie.
    private static func shell(_ arguments: [String], environment: [String: String] = [:], timeout: Double = 600) throws -> ShellResult {
        let folder = try TemporaryDirectory()
        let out = folder.file("stdout"), err = folder.file("stderr")
        let executable = arguments[0].hasPrefix("/") ? arguments[0] : TestPaths.repositoryRoot.appendingPathComponent(arguments[0]).path
        let child = try Spawned(executable, Array(arguments.dropFirst()),
                                environment: ProcessInfo.processInfo.environment.merging(environment) { $1 }, stdout: out, stderr: err)
        guard child.wait(seconds: timeout) else {
            child.killTree()
            throw CannotStart(description: "\(arguments.joined(separator: " ")) did not finish within \(Int(timeout)) s")
        }
        return ShellResult(status: child.status ?? -1, stdout: (try? String(contentsOf: out, encoding: .utf8)) ?? "",
                           stderr: (try? String(contentsOf: err, encoding: .utf8)) ?? "")
    }
}
