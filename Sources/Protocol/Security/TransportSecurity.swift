// TransportSecurity: what each end needs for CURVE. The coordinator proves
// itself with its secret key and admits workers whose public keys are on the
// allow-list (checked by the ZAP handler at each connection); a worker proves
// itself with its own secret key and checks the coordinator's public key.
import Foundation

/// The coordinator's keys: its pair, and the allow-list file of worker public keys.
public struct CoordinatorSecurity: Sendable {
    public var keyPair: CurveKeyPair
    /// Re-read at each connection, so that `factsweep keys revoke` applies to the next one.
    public var allowList: URL

    public init(keyPair: CurveKeyPair, allowList: URL) {
        self.keyPair = keyPair
        self.allowList = allowList
    }
}

/// A worker's keys: its pair, and the coordinator's public key it expects.
public struct WorkerSecurity: Sendable {
    public var keyPair: CurveKeyPair
    public var coordinatorKey: String

    public init(keyPair: CurveKeyPair, coordinatorKey: String) throws(KeyError) {
        self.keyPair = keyPair
        self.coordinatorKey = try Curve.checkedKey(coordinatorKey, what: "the coordinator's public key")
    }
}

/// The CURVE side a socket takes, applied as socket options before bind or connect.
public enum CurveRole: Sendable {
    /// Accepts CURVE clients only; each is put to the ZAP handler (domain `zapDomain`).
    case server(CurveKeyPair)
    /// Connects only to the server holding the secret key of `serverKey`.
    case client(CurveKeyPair, serverKey: String)

    /// The ZAP domain the coordinator's socket names in its requests.
    public static let zapDomain = "factsweep"
}

/// Whether an endpoint is reachable only from this host (loopback TCP, `ipc://`, `inproc://`).
public enum EndpointScope {
    public static func isLocal(_ endpoint: String) -> Bool {
        if endpoint.hasPrefix("inproc://") || endpoint.hasPrefix("ipc://") { return true }
        guard endpoint.hasPrefix("tcp://") else { return false }
        let address = endpoint.dropFirst("tcp://".count)
        let host = address.hasPrefix("[") ? String(address.dropFirst().prefix { $0 != "]" }) : String(address.prefix { $0 != ":" })
        return host == "localhost" || host == "::1" || host.hasPrefix("127.")
    }
}
