// SlurmJobs: the job ids of a run's submissions (RUN/slurm/jobs.json), and
// the Slurm commands `factsweep slurm` runs — sbatch, squeue, scancel.
import Foundation

/// Every job `factsweep slurm` submitted for a run, oldest first.
struct SlurmJobs: Codable {
    var coordinators: [String] = []
    var workerArrays: [String] = []

    enum CodingKeys: String, CodingKey { case coordinators = "coordinator_jobs", workerArrays = "worker_arrays" }

    var all: [String] { coordinators + workerArrays }

    static func file(_ folder: URL) -> URL { folder.appendingPathComponent("jobs.json") }

    /// The recorded jobs; none when nothing was submitted yet.
    static func read(_ folder: URL) throws -> SlurmJobs {
        guard let data = try? Data(contentsOf: file(folder)) else { return SlurmJobs() }
        do { return try JSONDecoder().decode(SlurmJobs.self, from: data) } catch {
            throw SlurmError("\(file(folder).path) is damaged (\(error)); cancel the jobs with scancel by name (squeue --name) and remove it")
        }
    }

    /// Submits `script` and records its job id under `role` in `folder`'s jobs.json at once, so that
    /// --cancel finds it even if a later submission fails.
    mutating func submit(_ script: URL, as role: WritableKeyPath<SlurmJobs, [String]>, recordingIn folder: URL) throws -> String {
        let id = try Sbatch.submit(script)
        self[keyPath: role].append(id)
        try write(folder)
        return id
    }

    func write(_ folder: URL) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try encoder.encode(self).write(to: Self.file(folder), options: .atomic)
    }
}

/// Slurm's commands, run as a user would; their errors come back with Slurm's own message.
enum Sbatch {
    /// Submits `script`; returns its job id.
    static func submit(_ script: URL) throws -> String {
        let output = try run("sbatch", ["--parsable", script.path])
        // --parsable prints `jobid` or `jobid;cluster`.
        guard let id = output.split(separator: ";").first.map(String.init)?.trimmingCharacters(in: .whitespacesAndNewlines),
              !id.isEmpty, id.allSatisfy(\.isNumber) else {
            throw SlurmError("sbatch \(script.path) printed no job id: \(output)")
        }
        return id
    }

    /// Which of `ids` (jobs or job arrays) still have a task queued or running.
    static func liveJobs(_ ids: [String]) throws -> Set<String> {
        guard !ids.isEmpty else { return [] }
        // %F is an array task's array job id and a plain job's own id; asking for all jobs, not by id,
        // because squeue refuses ids it has forgotten.
        let output = try run("squeue", ["--noheader", "--format=%F"])
        let queued = Set(output.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) })
        return Set(ids).intersection(queued)
    }

    /// Runs `command arguments` from PATH and returns its standard output.
    @discardableResult
    static func run(_ command: String, _ arguments: [String]) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [command] + arguments
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let errData = ThreadedRead(err.fileHandleForReading)
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let stderr = String(decoding: errData.wait(), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard process.terminationStatus == 0 else {
            if process.terminationStatus == 127 {
                throw SlurmError("\(command) not found: run factsweep slurm on a Slurm login node (or add Slurm's commands to PATH)")
            }
            throw SlurmError("\(command) \(arguments.joined(separator: " ")) failed (status \(process.terminationStatus)): \(stderr)")
        }
        return String(decoding: outData, as: UTF8.self)
    }
}

/// Reads a pipe to its end on a thread of its own, so that a child writing to two pipes never blocks.
private final class ThreadedRead: @unchecked Sendable {
    private let done = DispatchSemaphore(value: 0)
    private var data = Data()

    init(_ handle: FileHandle) {
        Thread { [self] in
            data = handle.readDataToEndOfFile()
            done.signal()
        }.start()
    }

    func wait() -> Data {
        done.wait()
        return data
    }
}

/// A Slurm command failed, or the run's job records are missing: what happened and what to do.
struct SlurmError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
