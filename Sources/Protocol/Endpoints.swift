// Endpoints: each side's socket speaking `Message`s — the coordinator's bound
// ROUTER and a worker's connected DEALER. Bad input is counted, logged and (by
// the coordinator) answered here; what to do with good messages is the
// caller's switch. Same threading rule as ZMQSocket: one owner.
import Foundation
import Logging

/// A connection's ROUTER routing id. Workers present none, so libzmq gives each connection its own: a
/// peer is one connection, and its worker id is what its `hello` said (docs/protocol.md, "Peers").
public struct PeerID: Hashable, Sendable, CustomStringConvertible {
    public var bytes: Data

    public init(_ bytes: Data) { self.bytes = bytes }
    public init(workerID: String) { bytes = Data(workerID.utf8) }

    /// The routing id as text when it is printable, else its bytes in hex (libzmq's own ids).
    public var description: String {
        if let text = String(data: bytes, encoding: .utf8), !text.isEmpty, text.unicodeScalars.allSatisfy({ $0.value >= 0x20 }) {
            return text
        }
        return "0x" + bytes.map { String(format: "%02x", $0) }.joined()
    }
}

/// Rejected input, counted by `ProtocolError.label`.
public struct Rejections: Sendable, Equatable {
    public private(set) var counts: [String: Int] = [:]
    public var total: Int { counts.values.reduce(0, +) }

    public subscript(label: String) -> Int { counts[label, default: 0] }

    /// Decodes `frames` (of `frameCount` received); a rejection is counted and logged before it is returned.
    mutating func decode(_ frames: [Data], frameCount: Int, from peer: String, limit: Int, logger: Logger) -> Result<Message, ProtocolError> {
        do throws(ProtocolError) {
            // Only the first frames were kept (ZMQSocket.receiveMessage): the count says how many came.
            guard frameCount == frames.count else { throw .badFrameCount(frameCount) }
            let message = try Message.decode(frames, maxFrameBytes: limit)
            logger.trace("received", metadata: ["peer": "\(peer)", "type": "\(message.type)"])
            return .success(message)
        } catch {
            count(error, from: peer, logger: logger)
            return .failure(error)
        }
    }

    /// Counts and logs one rejection.
    mutating func count(_ error: ProtocolError, from peer: String, logger: Logger) {
        counts[error.label, default: 0] += 1
        if case .unauthenticated = error {
            logger.error("a message from a connection no key authenticated was dropped: is the ZAP handler running?",
                         metadata: ["peer": "\(peer)"])
        } else {
            logger.warning("rejected a message", metadata: ["peer": "\(peer)", "kind": "\(error.label)", "reason": "\(error)"])
        }
    }
}

/// The coordinator's end: a ROUTER bound to `endpoint`, addressing workers by id.
public final class CoordinatorEndpoint {
    public let socket: ZMQSocket
    /// The endpoint actually bound (a port of 0 or `*` resolved).
    public let endpoint: String
    public let timing: ProtocolTiming
    public private(set) var rejections = Rejections()
    /// Peers answered about a wrong version; their further wrong-version messages are ignored silently.
    private var turnedAway: Set<PeerID> = []
    private let logger: Logger
    /// With `security`: the handler that admits only allow-listed worker keys.
    public let authenticator: ZAPHandler?

    /// Binds a ROUTER; with `security`, a CURVE server whose peers pass the ZAP handler started first.
    public init(_ context: ZMQContext, bind endpoint: String, timing: ProtocolTiming = ProtocolTiming(),
                security: CoordinatorSecurity? = nil, logger: Logger) throws(ZMQError) {
        let handshakeEvents = "inproc://factsweep.handshake-failures.\(UUID().uuidString)"
        authenticator = try security.map { security throws(ZMQError) in
            try ZAPHandler(context, allowList: security.allowList, handshakeEvents: handshakeEvents, logger: logger)
        }
        socket = try ZMQSocket(context, .router, options: .init(timing: timing, curve: security.map { .server($0.keyPair) }))
        if authenticator != nil { try socket.monitor(handshakeEvents, events: ZAPHandler.handshakeFailures) }
        self.endpoint = try socket.bind(endpoint)
        self.timing = timing
        self.logger = logger
    }

    /// Sends `message` to `peer`; dropped by libzmq if that peer is not connected (ROUTER_MANDATORY off).
    /// Throws `ProtocolError.oversized` or a `ZMQError`.
    public func send(_ message: Message, to peer: PeerID) throws {
        try socket.send([peer.bytes] + Message.encode(message, maxFrameBytes: timing.maxMessageBytes))
        logger.trace("sent", metadata: ["peer": "\(peer)", "type": "\(message.type)"])
    }

    /// The next message within `timeout`, or a rejected one (already counted, logged and answered); nil on timeout.
    /// `user`: with CURVE, the public key the sender's connection authenticated with (the ZAP user id).
    public func receive(timeout: Duration) throws(ZMQError)
        -> (peer: PeerID, user: String?, message: Result<Message, ProtocolError>)? {
        // The routing id and a message's three frames; more is refused unread.
        guard let received = try socket.receiveMessage(timeout: timeout, keepingAtMost: 1 + Message.frameCount),
              !received.frames.isEmpty else { return nil }
        var frames = received.frames
        let peer = PeerID(frames.removeFirst())
        // With keys every admitted connection carries the key ZAP admitted it with. One without came in
        // while no handler answered: it is not read, and not answered.
        if authenticator != nil, (received.userID ?? "").isEmpty {
            rejections.count(.unauthenticated, from: peer.description, logger: logger)
            return (peer, nil, .failure(.unauthenticated))
        }
        let result = rejections.decode(frames, frameCount: received.frameCount - 1, from: peer.description,
                                       limit: timing.maxMessageBytes, logger: logger)
        switch result {
        case .success: turnedAway.remove(peer)
        case .failure(let error): answer(error, frames, to: peer)
        }
        return (peer, received.userID, result)
    }

    /// Whether `peer`'s connection is still open. libzmq tells only through a send: with ROUTER_MANDATORY
    /// on, one to a closed connection fails with EHOSTUNREACH. The probe is a heartbeat, harmless to a worker.
    public func isConnected(_ peer: PeerID) -> Bool {
        do {
            let probe = try Message.encode(.heartbeat(.init()), maxFrameBytes: timing.maxMessageBytes)
            try socket.setRouterMandatory(true)
            defer { try? socket.setRouterMandatory(false) }
            try socket.send([peer.bytes] + probe, waiting: false)
            return true
        } catch let error as ZMQError where error.code == EHOSTUNREACH {
            return false
        } catch {
            // A full queue (EAGAIN) is a connection that is there.
            return true
        }
    }

    /// Closes the socket: messages not yet sent are kept for up to `linger` (the last `shutdown`s), then
    /// discarded; workers that heard nothing start reconnecting.
    public func close(linger: Duration = .zero) {
        socket.close(linger: linger)
        authenticator?.stop()
    }

    /// Tells `peer` why its message was refused — except an `error` (no answer to an answer) and
    /// repeated wrong versions (the peer is ignored after one answer).
    private func answer(_ error: ProtocolError, _ frames: [Data], to peer: PeerID) {
        if frames.count > 1, frames[1] == Data([MessageType.error.rawValue]) { return }
        if case .wrongVersion = error, !turnedAway.insert(peer).inserted { return }
        do {
            try send(.error(.init(reason: error.description)), to: peer)
        } catch {
            logger.warning("could not answer a rejected message", metadata: ["peer": "\(peer)", "error": "\(error)"])
        }
    }
}

/// A worker's end: a DEALER connected to the coordinator. It presents no routing id: the coordinator knows
/// it by its `hello`, and a second process under the same worker id cannot take its connection over.
/// To reconnect after `ProtocolTiming.peerDeadAfter` of silence, close it and make a new one.
public final class WorkerEndpoint {
    public let socket: ZMQSocket
    public let workerID: String
    public let timing: ProtocolTiming
    public private(set) var rejections = Rejections()
    private let logger: Logger

    /// Connects a DEALER; with `security`, a CURVE client that talks only to the coordinator holding that key.
    public init(_ context: ZMQContext, connect endpoint: String, workerID: String,
                timing: ProtocolTiming = ProtocolTiming(), security: WorkerSecurity? = nil, logger: Logger) throws(ZMQError) {
        socket = try ZMQSocket(context, .dealer, options: .init(
            timing: timing, curve: security.map { .client($0.keyPair, serverKey: $0.coordinatorKey) }))
        try socket.connect(endpoint)
        self.workerID = workerID
        self.timing = timing
        self.logger = logger
    }

    /// Sends `message`, queued until connected. Throws `ProtocolError.oversized` or a `ZMQError`
    /// (EAGAIN when the queue stays full for the send timeout).
    public func send(_ message: Message) throws {
        try socket.send(Message.encode(message, maxFrameBytes: timing.maxMessageBytes))
        logger.trace("sent", metadata: ["type": "\(message.type)"])
    }

    /// The next message from the coordinator within `timeout`, or a rejected one (counted and logged,
    /// never answered); nil on timeout, or once `descriptor` (a wake-up pipe) is readable.
    public func receive(timeout: Duration, wakingFor descriptor: Int32? = nil) throws(ZMQError) -> Result<Message, ProtocolError>? {
        guard let received = try socket.receiveMessage(timeout: timeout, wakingFor: descriptor, keepingAtMost: Message.frameCount)
        else { return nil }
        return rejections.decode(received.frames, frameCount: received.frameCount, from: "coordinator",
                                 limit: timing.maxMessageBytes, logger: logger)
    }

    /// Closes the socket now; unsent messages are discarded (they are resent after reconnecting).
    public func close() { socket.close() }
}
