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

    /// Runs `factsweep ARGS` from the repository root and waits for it.
    public static func run(_ arguments: [String], environment: [String: String] = [:]) throws -> ProcessResult {
        let process = Process()
        process.executableURL = try url()
        process.arguments = arguments
        process.currentDirectoryURL = TestPaths.repositoryRoot
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        // Read both pipes concurrently so that neither fills and blocks the child.
        let errData = UncheckedBox<Data>()
        let reader = Thread { errData.value = err.fileHandleForReading.readDataToEndOfFile() }
        reader.start()
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        while errData.value == nil { usleep(1000) }
        return ProcessResult(status: process.terminationStatus, stdout: String(decoding: outData, as: UTF8.self),
                             stderr: String(decoding: errData.value ?? Data(), as: UTF8.self))
    }
}

final class UncheckedBox<T>: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: T?
    var value: T? {
        get { lock.lock(); defer { lock.unlock() }; return stored }
        set { lock.lock(); stored = newValue; lock.unlock() }
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
/// start a second one beside it.
public final class FactSweepChild: @unchecked Sendable {
    public let process = Process()
    public let log: URL

    public init(_ arguments: [String], log: URL) throws {
        self.log = log
        process.executableURL = try FactSweepBinary.url()
        process.arguments = arguments
        process.currentDirectoryURL = TestPaths.repositoryRoot
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        let handle = try FileHandle(forWritingTo: log)
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
    }

    public var isRunning: Bool { process.isRunning }
    public var status: Int32? { process.isRunning ? nil : process.terminationStatus }
    public var output: String { (try? String(contentsOf: log, encoding: .utf8)) ?? "" }

    /// Whether the process exited within `seconds`.
    public func wait(seconds: Double) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while process.isRunning && Date() < deadline { usleep(50_000) }
        return !process.isRunning
    }

    /// Whether `text` appeared in the output within `seconds`.
    public func waitForOutput(_ text: String, seconds: Double) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while !output.contains(text) && process.isRunning && Date() < deadline { usleep(50_000) }
        return output.contains(text)
    }

    /// Ends the process with SIGKILL (as a crash would) and waits for it.
    public func kill9() {
        guard process.isRunning else { return }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    /// Ends the process: SIGTERM, then SIGKILL after five seconds.
    public func stop() {
        guard process.isRunning else { return }
        kill(process.processIdentifier, SIGTERM)
        if !wait(seconds: 5) { kill9() }
    }
}
