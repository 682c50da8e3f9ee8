// CoordinatorAddressFile: `RUN/coordinator.json`, how workers find the
// coordinator through the run directory on a shared filesystem — so that
// workers (a Slurm job array) may start before or after the coordinator, and
// follow it when it is restarted elsewhere on another port.
import Foundation
import Protocol

/// What a coordinator publishes about itself when it binds.
public struct CoordinatorAddress: Codable, Sendable, Equatable {
    /// Whether the coordinator serves, or has ended the sweep (late workers then exit at once).
    public enum State: String, Codable, Sendable { case serving, finished }

    /// Where workers connect, e.g. `tcp://node17:40213`.
    public var endpoint: String
    /// The coordinator's CURVE public key (Z85) once the protocol is encrypted; nil until then.
    public var publicKey: String?
    public var host: String
    public var pid: Int32
    public var state: State
    /// The coordinator's timing, which its workers must share (heartbeat interval, lease).
    public var timing: ProtocolTiming

    public init(endpoint: String, publicKey: String? = nil, host: String, pid: Int32, state: State, timing: ProtocolTiming) {
        self.endpoint = endpoint; self.publicKey = publicKey; self.host = host; self.pid = pid; self.state = state; self.timing = timing
    }

    enum CodingKeys: String, CodingKey { case endpoint, publicKey = "public_key", host, pid, state, timing }

    /// Writes `public_key` even when null, so that the file shows where the key goes.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(endpoint, forKey: .endpoint)
        try container.encode(publicKey, forKey: .publicKey)
        try container.encode(host, forKey: .host)
        try container.encode(pid, forKey: .pid)
        try container.encode(state, forKey: .state)
        try container.encode(timing, forKey: .timing)
    }

    /// The endpoint workers on other hosts can reach for a coordinator bound to `bound`: a wildcard
    /// host (`0.0.0.0`, `*`, `::`) becomes `host`, so `tcp://0.0.0.0:40213` is published as `tcp://node17:40213`.
    public static func reachable(_ bound: String, host: String) -> String {
        guard bound.hasPrefix("tcp://") else { return bound }
        let address = bound.dropFirst("tcp://".count)
        guard let colon = address.lastIndex(of: ":") else { return bound }
        let name = address[..<colon]
        guard ["0.0.0.0", "*", "[::]", "::"].contains(name) else { return bound }
        return "tcp://\(host)\(address[colon...])"
    }
}

/// Reading and writing the address file.
public enum CoordinatorAddressFile {
    /// Writes `address` to `url` atomically (a reader sees the old file or the new one) and readable by
    /// its owner only: once CURVE keys travel this way they must not be world-readable.
    public static func write(_ address: CoordinatorAddress, to url: URL) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        let data = try encoder.encode(address)
        let partial = url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent).\(getpid()).partial")
        guard FileManager.default.createFile(atPath: partial.path, contents: data, attributes: [.posixPermissions: 0o600]) else {
            throw CoordinatorError("cannot write \(partial.path): check that the run directory is writable")
        }
        guard rename(partial.path, url.path) == 0 else {
            let reason = String(cString: strerror(errno))
            try? FileManager.default.removeItem(at: partial)
            throw CoordinatorError("cannot move the coordinator's address into \(url.path): \(reason)")
        }
    }

    /// The address in `url`; nil while there is no such file (the coordinator has not bound yet).
    public static func read(_ url: URL) throws -> CoordinatorAddress? {
        let data: Data
        do { data = try Data(contentsOf: url) } catch CocoaError.fileReadNoSuchFile {
            return nil
        } catch {
            throw CoordinatorError("\(url.path): cannot read: \(error.localizedDescription)")
        }
        do { return try JSONDecoder().decode(CoordinatorAddress.self, from: data) } catch {
            throw CoordinatorError("\(url.path) is not a coordinator address file: \(error)")
        }
    }

    /// Waits until `url` exists and returns its address, polling every `interval`; nil when `stop` says so first.
    public static func wait(for url: URL, interval: Duration = .milliseconds(500), stop: () -> Bool = { false },
                            waiting: () -> Void = {}) throws -> CoordinatorAddress? {
        var announced = false
        while !stop() {
            if let address = try read(url) { return address }
            if !announced { waiting(); announced = true }
            Thread.sleep(forTimeInterval: Double(interval.components.seconds) + Double(interval.components.attoseconds) / 1e18)
        }
        return nil
    }
}

extension RunDirectory {
    /// `coordinator.json`: the running coordinator's address (CoordinatorAddressFile).
    public var coordinatorAddress: URL { url.appendingPathComponent("coordinator.json") }
}
