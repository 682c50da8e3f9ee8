// UserRequest: how `factsweep retry` and `cancel` change a run — by themselves
// when no coordinator serves the run directory (they take its lock, so none
// can start meanwhile), through the running coordinator's control socket when
// one does (it alone writes the run database, and it tells the workers).
import Coordinator
import Foundation
import Logging

enum UserRequest {
    /// Applies `request` to the run in `path` and prints what changed; throws (exit 1) if any key failed.
    static func perform(_ request: ControlRequest, runDirectory path: String) throws {
        let run = RunDirectory(URL(fileURLWithPath: path))
        guard FileManager.default.fileExists(atPath: run.database.path) else {
            throw CLIError("\(path) is not a run directory: there is no \(run.database.lastPathComponent) in it")
        }
        let reply: ControlReply
        if let lock = try RunDirectoryLock.take(run.url) {
            defer { withExtendedLifetime(lock) {} }
            let store = try run.open(leaseDuration: 120, logger: Logger(label: "factsweep.\(request.action.rawValue)"), mustExist: true)
            reply = try store.batch { try RunControl.apply(request, in: $0).reply }
        } else {
            reply = try ControlChannel.request(request, runDirectory: run.url)
        }
        let verb = request.action == .retry ? "pending again" : "cancelled"
        for key in reply.changed { print("\(key) \(verb)") }
        if reply.changed.isEmpty && reply.errors.isEmpty { print("no trial to \(request.action.rawValue)") }
        guard reply.errors.isEmpty else { throw CLIError(reply.errors.joined(separator: "\n")) }
    }
}
