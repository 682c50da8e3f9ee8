// PathSwitch: a faster path that a process turns off with an environment
// variable and a test turns off on its thread, to compare with the path before it.
import Foundation

/// A path the code takes by default (the NF4 products' blocked and
/// per-thread layouts, the shared prompt prefix): `ENV=off` turns it off for
/// the process (a benchmark's before/after), `withoutIt` for the calling
/// thread during a closure (tests comparing both ways in one process).
struct PathSwitch: Sendable {
    let environmentKey: String
    /// Whether this process allows the path (the environment's say).
    let byEnvironment: Bool
    private let offOnThread = ThreadFlag()

    init(environmentKey: String) {
        self.environmentKey = environmentKey
        byEnvironment = ProcessInfo.processInfo.environment[environmentKey]?.lowercased() != "off"
    }

    /// Whether the calling thread takes the path.
    var isOn: Bool { byEnvironment && !offOnThread.isSet }

    /// Runs `body` with the path off on the calling thread.
    func withoutIt<Result>(_ body: () throws -> Result) rethrows -> Result {
        try offOnThread.run(true, body)
    }
}
