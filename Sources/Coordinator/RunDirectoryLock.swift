// RunDirectoryLock: one coordinator per run directory. Two coordinators on one
// run database would each mark the other's running trials stale and hand them
// out again; the second one refuses to start instead, naming the first.
import Foundation

/// An exclusive `flock` on `RUN/coordinator.lock`, held while this value lives (and released by the
/// kernel when the process ends, however it ends). The file says who holds it: pid and host.
public final class RunDirectoryLock {
    public static let fileName = "coordinator.lock"
    private let descriptor: Int32

    /// Takes the lock of the run directory `directory` (creating the directory), or throws a
    /// `CoordinatorError` naming the process that holds it.
    public convenience init(_ directory: URL) throws {
        try self.init(directory, refusingIfHeld: true)
    }

    /// The lock of `directory`, or nil when a coordinator holds it (for `factsweep retry` / `cancel`, which
    /// then ask that coordinator).
    public static func take(_ directory: URL) throws -> RunDirectoryLock? {
        do {
            return try RunDirectoryLock(directory, refusingIfHeld: false)
        } catch is Held {
            return nil
        }
    }

    private struct Held: Error {}

    private init(_ directory: URL, refusingIfHeld: Bool) throws {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let file = directory.appendingPathComponent(Self.fileName)
        // Close-on-exec: worker processes started by `factsweep run` must not inherit (and keep) the lock.
        let descriptor = open(file.path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else {
            throw CoordinatorError("cannot open \(file.path) (\(String(cString: strerror(errno)))); check the run directory's permissions")
        }
        guard flock(descriptor, LOCK_EX | LOCK_NB) == 0 else {
            let failure = errno
            close(descriptor)
            guard failure == EWOULDBLOCK else {
                throw CoordinatorError("cannot lock \(file.path) (\(String(cString: strerror(failure))))")
            }
            if !refusingIfHeld { throw Held() }
            let holder = ((try? String(contentsOf: file, encoding: .utf8)) ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
            throw CoordinatorError("""
                another coordinator serves the run directory \(directory.path) (\(holder.isEmpty ? "holder unknown" : holder)); \
                stop it first, or give this coordinator another run directory
                """)
        }
        self.descriptor = descriptor
        let holder = Data("pid \(getpid()) on host \(ProcessInfo.processInfo.hostName)\n".utf8)
        _ = ftruncate(descriptor, 0)
        _ = holder.withUnsafeBytes { pwrite(descriptor, $0.baseAddress, $0.count, 0) }
    }

    deinit { close(descriptor) }
}
