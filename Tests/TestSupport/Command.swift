// Command: running any program from a test with a deadline. A test that waits
// for a child without one turns a hung child (a sweep that never ends, a
// headless browser stuck at start-up) into a test run that never ends, and CI
// then reports a timeout instead of the test that hung. Here the child and
// every process it started are killed at the deadline and the test fails with
// the command and what it printed.
import Foundation

/// A command that did not finish within its deadline: it and its descendants were killed.
public struct CommandTimedOut: Error, CustomStringConvertible {
    public let command: String
    public let seconds: Double
    public let stdout: String
    public let stderr: String
    public var description: String {
        "timed out after \(Int(seconds)) s (killed with its descendants): \(command)\n--- stdout (tail)\n\(stdout.suffix(4000))\n--- stderr (tail)\n\(stderr.suffix(4000))"
    }
}

public enum Command {
    /// The default deadline: far beyond any single command the suite runs on a loaded 2-core machine.
    public static let defaultTimeout: Double = 900

    /// Runs `executable ARGS` to completion (see `Spawned`), its output going to files read at the end, in
    /// `directory` when given, with `environment` (default: this process's). Throws `CommandTimedOut` after
    /// `timeout` seconds, having killed the child and its descendants.
    public static func run(_ executable: URL, _ arguments: [String], environment: [String: String]? = nil,
                           directory: URL? = nil, timeout: Double = defaultTimeout) throws -> ProcessResult {
        let folder = try TemporaryDirectory()
        let out = folder.file("stdout"), err = folder.file("stderr")
        let child = try Spawned(executable.path, arguments, environment: environment ?? ProcessInfo.processInfo.environment,
                                directory: directory, stdout: out, stderr: err)
        let finished = child.wait(seconds: timeout)
        if !finished { child.killTree() }
        let stdout = (try? String(contentsOf: out, encoding: .utf8)) ?? ""
        let stderr = (try? String(contentsOf: err, encoding: .utf8)) ?? ""
        guard finished else {
            throw CommandTimedOut(command: ([executable.path] + arguments).joined(separator: " "), seconds: timeout,
                                  stdout: stdout, stderr: stderr)
        }
        return ProcessResult(status: child.status ?? -1, stdout: stdout, stderr: stderr)
    }
}

public enum ProcessTree {
    /// The process's descendants, from /proc (children of every thread, recursively).
    public static func descendants(of pid: Int32) -> [Int32] {
        var found: [Int32] = []
        var queue = [pid]
        while let next = queue.popLast() {
            let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(next)/task")) ?? []
            for task in tasks {
                guard let text = try? String(contentsOfFile: "/proc/\(next)/task/\(task)/children", encoding: .utf8) else { continue }
                let children = text.split(separator: " ").compactMap { Int32($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
                found += children
                queue += children
            }
        }
        return found
    }

    /// SIGKILL to the process and every descendant (listed first, so that none is orphaned unlisted).
    public static func kill(_ pid: Int32) {
        let all = descendants(of: pid)
        Foundation.kill(pid, SIGKILL)
        for child in all { Foundation.kill(child, SIGKILL) }
    }
}

extension Process {
    /// Waits for the process at most `seconds`. Past them kills it and its descendants and returns false,
    /// so that a test waiting for a child that hangs fails instead of hanging the suite. Never calls
    /// `waitUntilExit()` on a killed child: Foundation's monitor may have missed its exit (see `Spawned`).
    public func waitOrKill(seconds: Double = Command.defaultTimeout) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while isRunning && Date() < deadline { usleep(20_000) }
        guard isRunning else { return true }
        ProcessTree.kill(processIdentifier)
        let reaped = Date().addingTimeInterval(10)
        while isRunning && Date() < reaped { usleep(20_000) }
        return false
    }
}
