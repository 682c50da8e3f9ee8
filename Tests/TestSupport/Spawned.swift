// Spawned: a child process started with posix_spawn and reaped by this object
// alone, with waitpid. Foundation's Process is not used for the children the
// tests wait on: with many children started and ended at once its exit
// monitor can miss an exit, and then `isRunning` stays true and
// `waitUntilExit()` never returns (LocalSlurm met it first; a test suite that
// hangs in CI until the job's time runs out is the cost). The child also
// starts as a clean process: no blocked or ignored signals (the test runner's
// threads block some, and a mask is inherited across exec), no descriptors
// but its three streams (another test's pipe held open by our child would
// keep that test waiting for an end of file).
import Foundation

public final class Spawned: @unchecked Sendable {
    public let pid: pid_t
    public let arguments: [String]
    private let lock = NSLock()
    private var exitStatus: Int32?

    /// Starts `executable ARGUMENTS` with stdin from /dev/null and stdout/stderr appended to the given files
    /// (the same file for both is fine), in `directory` when given, with exactly `environment`.
    public init(_ executable: String, _ arguments: [String], environment: [String: String], directory: URL? = nil,
                stdout: URL, stderr: URL) throws {
        self.arguments = arguments
        for file in [stdout, stderr] where !FileManager.default.fileExists(atPath: file.path) {
            _ = FileManager.default.createFile(atPath: file.path, contents: nil)
        }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, stdout.path, O_WRONLY | O_APPEND, 0)
        posix_spawn_file_actions_addopen(&actions, 2, stderr.path, O_WRONLY | O_APPEND, 0)
        guard let closeFrom = Self.addCloseFrom, let changeDirectory = Self.addChangeDirectory else {
            throw SpawnFailed(description: "this C library lacks posix_spawn_file_actions_addclosefrom_np/addchdir_np (glibc 2.34+)")
        }
        _ = closeFrom(&actions, 3)
        if let directory { _ = changeDirectory(&actions, directory.path) }
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var none = sigset_t(), defaults = sigset_t()
        sigemptyset(&none)
        sigemptyset(&defaults)
        for signal in [SIGTERM, SIGINT, SIGHUP, SIGPIPE, SIGCHLD, SIGUSR1, SIGUSR2, SIGQUIT] { sigaddset(&defaults, signal) }
        posix_spawnattr_setsigmask(&attributes, &none)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { (argv + envp).forEach { free($0) } }
        var child: pid_t = 0
        let error = posix_spawn(&child, executable, &actions, &attributes, argv, envp)
        guard error == 0 else {
            throw SpawnFailed(description: "cannot run \(executable): \(String(cString: strerror(error)))")
        }
        pid = child
    }

    // glibc's posix_spawn_file_actions_addclosefrom_np and _addchdir_np (2.34, 2.29): the Glibc module does
    // not export these GNU extensions, so they are looked up by name.
    private typealias AddCloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32
    private typealias AddChangeDirectory = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, UnsafePointer<CChar>) -> Int32
    private static let addCloseFrom = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "posix_spawn_file_actions_addclosefrom_np")
        .map { unsafeBitCast($0, to: AddCloseFrom.self) }
    private static let addChangeDirectory = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "posix_spawn_file_actions_addchdir_np")
        .map { unsafeBitCast($0, to: AddChangeDirectory.self) }

    /// The exit status (128 + N for a death by signal N), or nil while the child runs.
    public var status: Int32? {
        lock.withLock {
            if exitStatus == nil {
                var raw: Int32 = 0
                let reaped = waitpid(pid, &raw, WNOHANG)
                if reaped == pid {
                    exitStatus = (raw & 0x7f) == 0 ? (raw >> 8) & 0xff : 128 + (raw & 0x7f)
                } else if reaped == -1 && errno == ECHILD {
                    exitStatus = -1
                }
            }
            return exitStatus
        }
    }

    public var isRunning: Bool { status == nil }

    /// Whether the child ended within `seconds`.
    @discardableResult
    public func wait(seconds: Double) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while isRunning && Date() < deadline { usleep(20_000) }
        return !isRunning
    }

    /// Sends `signal` to the child if it still runs.
    public func signal(_ signal: Int32) {
        if isRunning { kill(pid, signal) }
    }

    /// SIGKILL to the child and its descendants, then reaps it.
    public func killTree() {
        guard isRunning else { return }
        ProcessTree.kill(pid)
        wait(seconds: 30)
    }

    /// SIGTERM, SIGKILL after `grace` seconds, then SIGKILL to every descendant still alive (listed before the
    /// first signal): a child killed before its own children (tshark before its dumpcap) leaves them running.
    public func stop(grace: Double = 5) {
        guard isRunning else { return }
        let all = ProcessTree.descendants(of: pid)
        kill(pid, SIGTERM)
        if !wait(seconds: grace) {
            kill(pid, SIGKILL)
            wait(seconds: 30)
        }
        for child in all { kill(child, SIGKILL) }
    }
}

public struct SpawnFailed: Error, CustomStringConvertible {
    public let description: String
}
