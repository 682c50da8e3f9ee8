// CoordinatorLocation: where `factsweep worker` connects — a fixed endpoint
// (--connect), or the address file a coordinator writes into the run
// directory (--run-dir, --connect-file), waited for and followed.
import Coordinator
import Foundation
import Protocol

struct CoordinatorLocation {
    /// The endpoint to connect to first.
    var endpoint: String
    /// The coordinator's timing, when its address file gave it.
    var timing: ProtocolTiming?
    /// The coordinator's CURVE public key, when its address file gave it.
    var publicKey: String?
    /// Re-reads the address file before each reconnection; nil for a fixed endpoint.
    var locate: (@Sendable () -> String?)?

    /// A fixed endpoint.
    init(endpoint: String) { self.endpoint = endpoint; timing = nil; locate = nil }

    /// Waits for `file` (the coordinator may not have started yet); nil when the coordinator has
    /// already finished the sweep, so that a late worker has nothing to do.
    static func waiting(for file: URL, log: (String) -> Void) throws -> CoordinatorLocation? {
        guard let address = try CoordinatorAddressFile.wait(for: file, waiting: { log("waiting for the coordinator's address in \(file.path)") })
        else { return nil }
        guard address.state == .serving else {
            log("the coordinator in \(file.path) has finished the sweep; nothing to do")
            return nil
        }
        var location = CoordinatorLocation(endpoint: address.endpoint)
        location.timing = address.timing
        location.publicKey = address.publicKey
        // An unreadable or half-written file keeps the endpoint in use; a finished one too (the coordinator
        // that finished has sent `shutdown` to every worker it knew).
        location.locate = { (try? CoordinatorAddressFile.read(file)).flatMap { $0 }.map(\.endpoint) }
        return location
    }
}
