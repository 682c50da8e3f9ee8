// Processes: running the built `factsweep` executable from tests, as a user would.
import Foundation

/// The result of running a command to completion.
public struct ProcessResult: Sendable {
    public let status: Int32
    public let stdout: String
    public let stderr: String
}

public enum FactSweepBinary {
    /// The `factsweep` executable built beside the test bundle (same configuration).
    public static func url() throws -> URL {
        var dir = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        for _ in 0..<4 {
            dir.deleteLastPathComponent()
            let candidate = dir.appendingPathComponent("factsweep")
            if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
        }
        throw MissingAsset(path: "factsweep executable next to \(CommandLine.arguments[0]) (build with --build-tests)")
    }

    /// Runs `factsweep ARGS` from the repository root and waits for it, at most `timeout` seconds
    /// (then it and its workers are killed and `CommandTimedOut` is thrown).
    public static func run(_ arguments: [String], environment: [String: String] = [:],
                           timeout: Double = Command.defaultTimeout) throws -> ProcessResult {
        try Command.run(try url(), arguments, environment: ProcessInfo.processInfo.environment.merging(environment) { $1 },
                        directory: TestPaths.repositoryRoot, timeout: timeout)
    }
}

/// A temporary directory removed when the value is released.
public final class TemporaryDirectory: @unchecked Sendable {
    public let url: URL
    public init() throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("factsweep-test-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }
    public func file(_ name: String) -> URL { url.appendingPathComponent(name) }
    /// Removes the directory now (it is also removed on release).
    public func cleanUp() { try? FileManager.default.removeItem(at: url) }
    deinit { cleanUp() }
}

/// A `factsweep` process left running, its output in a log file: for tests that talk to it, kill it or
/// start a second one beside it. Started and reaped by `Spawned`, not Foundation's Process.
public final class FactSweepChild: @unchecked Sendable {
    public let child: Spawned
    public let log: URL

    public init(_ arguments: [String], log: URL, environment: [String: String] = [:]) throws {
        self.log = log
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        child = try Spawned(try FactSweepBinary.url().path, arguments,
                            environment: ProcessInfo.processInfo.environment.merging(environment) { $1 },
                            directory: TestPaths.repositoryRoot, stdout: log, stderr: log)
    }

    public var pid: Int32 { child.pid }
    public var arguments: [String] { child.arguments }
    public var isRunning: Bool { child.isRunning }
    public var status: Int32? { child.status }
    public var output: String { (try? String(contentsOf: log, encoding: .utf8)) ?? "" }

    /// Whether the process exited within `seconds`.
    public func wait(seconds: Double) -> Bool { child.wait(seconds: seconds) }

    /// Whether `text` appeared in the output within `seconds`.
    public func waitForOutput(_ text: String, seconds: Double) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while !output.contains(text) && isRunning && Date() < deadline { usleep(50_000) }
        return output.contains(text)
    }

    /// Ends the process with SIGKILL (as a crash would) and waits for it. Its children live on, as they
    /// would after a crash (workers reconnect to the next coordinator); `stop()` ends them later.
    public func kill9() {
        guard isRunning else { return }
        orphans += ProcessTree.descendants(of: pid)
        kill(pid, SIGKILL)
        child.wait(seconds: 30)
    }

    /// Ends the process: SIGTERM, then SIGKILL after five seconds; then every child it left (also those
    /// of an earlier `kill9()`) that is still a `factsweep`.
    public func stop() {
        child.stop()
        for pid in orphans where (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/exe"))?.hasSuffix("factsweep") == true {
            kill(pid, SIGKILL)
        }
        orphans = []
    }

    private var orphans: [Int32] = []
}
