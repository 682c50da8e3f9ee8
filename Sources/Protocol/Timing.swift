// Timing: the protocol's named constants — heartbeats, liveness, leases,
// reconnect back-off and the frame size limit (docs/protocol.md, "Liveness").
import Foundation

/// Timing constants and size limits shared by the coordinator and its workers.
/// The defaults suit a LAN; a `cluster.json` may override any of them (JSON keys beside each field).
public struct ProtocolTiming: Sendable, Equatable {
    /// Both sides send a heartbeat this often. `heartbeat_interval_seconds`
    public var heartbeatInterval: Duration = .seconds(1)
    /// Intervals of silence after which a peer is dead. `heartbeat_liveness`
    public var heartbeatLiveness: Int = 5
    /// A running attempt whose position has not advanced for this long is re-queued. `lease_expiry_seconds`
    public var leaseExpiry: Duration = .seconds(120)
    /// The first wait before a worker reconnects; doubles per failure up to `reconnectMax`. `reconnect_initial_seconds`
    public var reconnectInitial: Duration = .seconds(1)
    /// `reconnect_max_seconds`
    public var reconnectMax: Duration = .seconds(32)
    /// A send that cannot be queued for this long fails (`ZMQ_SNDTIMEO`). `send_timeout_seconds`
    public var sendTimeout: Duration = .seconds(1)
    /// The largest frame either side accepts (`ZMQ_MAXMSGSIZE`) or builds. `max_message_bytes`
    public var maxMessageBytes: Int = 64 << 20
    /// The largest checkpoint sent inline rather than by path; base64 grows it by a third. `inline_checkpoint_limit`
    public var inlineCheckpointLimit: Int = 16 << 20
    /// The coordinator's wait before a trial's next attempt after one that counted against its retry limit;
    /// doubles per counted attempt up to `retryBackoffMax`. `retry_backoff_initial_seconds`
    public var retryBackoffInitial: Duration = .seconds(5)
    /// `retry_backoff_max_seconds`
    public var retryBackoffMax: Duration = .seconds(300)

    public init() {}

    /// Silence after which a peer is declared dead.
    public var peerDeadAfter: Duration { heartbeatInterval * heartbeatLiveness }

    /// The wait before reconnect attempt `failures + 1`: `reconnectInitial` doubled per failure, at most `reconnectMax`.
    public func reconnectDelay(afterFailures failures: Int) -> Duration {
        var delay = reconnectInitial
        for _ in 0..<max(0, failures) where delay < reconnectMax { delay *= 2 }
        return min(delay, reconnectMax)
    }
}

extension ProtocolTiming: Codable {
    enum CodingKeys: String, CodingKey {
        case heartbeatInterval = "heartbeat_interval_seconds", heartbeatLiveness = "heartbeat_liveness"
        case leaseExpiry = "lease_expiry_seconds", reconnectInitial = "reconnect_initial_seconds"
        case reconnectMax = "reconnect_max_seconds", sendTimeout = "send_timeout_seconds"
        case maxMessageBytes = "max_message_bytes", inlineCheckpointLimit = "inline_checkpoint_limit"
        case retryBackoffInitial = "retry_backoff_initial_seconds", retryBackoffMax = "retry_backoff_max_seconds"
    }

    /// Missing keys keep their defaults; zero or negative values are refused by name.
    public init(from decoder: any Decoder) throws {
        self.init()
        let container = try decoder.container(keyedBy: CodingKeys.self)
        func seconds(_ key: CodingKeys, _ value: inout Duration) throws {
            guard let number = try container.decodeIfPresent(Double.self, forKey: key) else { return }
            try Self.refuseUnlessPositive(number, key, container)
            value = .milliseconds(Int64((number * 1000).rounded()))
        }
        func count(_ key: CodingKeys, _ value: inout Int) throws {
            guard let number = try container.decodeIfPresent(Int.self, forKey: key) else { return }
            try Self.refuseUnlessPositive(Double(number), key, container)
            value = number
        }
        try seconds(.heartbeatInterval, &heartbeatInterval)
        try count(.heartbeatLiveness, &heartbeatLiveness)
        try seconds(.leaseExpiry, &leaseExpiry)
        try seconds(.reconnectInitial, &reconnectInitial)
        try seconds(.reconnectMax, &reconnectMax)
        try seconds(.sendTimeout, &sendTimeout)
        try count(.maxMessageBytes, &maxMessageBytes)
        try count(.inlineCheckpointLimit, &inlineCheckpointLimit)
        try seconds(.retryBackoffInitial, &retryBackoffInitial)
        try seconds(.retryBackoffMax, &retryBackoffMax)
    }

    private static func refuseUnlessPositive(_ value: Double, _ key: CodingKeys,
                                             _ container: KeyedDecodingContainer<CodingKeys>) throws {
        guard value > 0 else {
            throw DecodingError.dataCorruptedError(forKey: key, in: container, debugDescription: "\(key.stringValue) must be positive, not \(value)")
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(heartbeatInterval.seconds, forKey: .heartbeatInterval)
        try container.encode(heartbeatLiveness, forKey: .heartbeatLiveness)
        try container.encode(leaseExpiry.seconds, forKey: .leaseExpiry)
        try container.encode(reconnectInitial.seconds, forKey: .reconnectInitial)
        try container.encode(reconnectMax.seconds, forKey: .reconnectMax)
        try container.encode(sendTimeout.seconds, forKey: .sendTimeout)
        try container.encode(maxMessageBytes, forKey: .maxMessageBytes)
        try container.encode(inlineCheckpointLimit, forKey: .inlineCheckpointLimit)
        try container.encode(retryBackoffInitial.seconds, forKey: .retryBackoffInitial)
        try container.encode(retryBackoffMax.seconds, forKey: .retryBackoffMax)
    }
}

extension Duration {
    /// Whole and fractional seconds.
    package var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }

    /// Milliseconds for libzmq's options and zmq_poll: rounded up so that a short wait is not zero, and
    /// never negative (-1 means "forever" to libzmq).
    var zmqMilliseconds: Int32 {
        let (seconds, attoseconds) = components
        let milliseconds = seconds * 1000 + (attoseconds + 999_999_999_999_999) / 1_000_000_000_000_000
        return Int32(clamping: max(0, milliseconds))
    }
}
