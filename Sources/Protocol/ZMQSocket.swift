// ZMQSocket: a small safe wrapper over a libzmq socket — the options the
// protocol uses, bind/connect, multipart send and receive with timeouts, and
// zmq_poll over several sockets. Errors are values (`ZMQError`).
//
// Threading: a libzmq socket must be used by one thread only. `ZMQSocket` is
// deliberately not `Sendable`, so the compiler keeps each socket with the task
// or thread that made it; other threads talk to that owner, never to the socket.
import CZMQ
import Foundation

public final class ZMQSocket {
    public enum Kind: Sendable {
        case router, dealer
        /// For reading a socket monitor's events.
        case pair
        /// For answering libzmq's ZAP requests (ZAPHandler) and the coordinator's control requests.
        case rep
        /// For `factsweep retry` / `cancel` asking a running coordinator (ControlChannel).
        case req

        var code: Int32 {
            switch self {
            case .router: ZMQ_ROUTER
            case .dealer: ZMQ_DEALER
            case .pair: ZMQ_PAIR
            case .rep: ZMQ_REP
            case .req: ZMQ_REQ
            }
        }
    }

    /// Socket options, set before bind or connect.
    public struct Options: Sendable {
        /// The routing identity a DEALER presents to a ROUTER (the worker id).
        public var identity: String?
        /// How long close waits to flush unsent messages (`ZMQ_LINGER`); the protocol resends instead.
        public var linger: Duration = .zero
        /// Inbound frames over this size disconnect the peer (`ZMQ_MAXMSGSIZE`, TCP only); nil: unlimited.
        public var maxMessageBytes: Int?
        /// `ZMQ_SNDTIMEO`; nil: block until queued.
        public var sendTimeout: Duration? = .seconds(1)
        /// `ZMQ_RCVTIMEO` for a blocking receive; `receive(timeout:)` polls instead.
        public var receiveTimeout: Duration?
        /// libzmq's own reconnect back-off for connected sockets (`ZMQ_RECONNECT_IVL` / `_MAX`).
        public var reconnectInterval: Duration = .milliseconds(100)
        public var reconnectIntervalMax: Duration?
        /// ROUTER: fail sends to unknown identities (`ZMQ_ROUTER_MANDATORY`); off drops them silently.
        public var routerMandatory = false
        /// ROUTER: a new connection presenting a routing id already in use takes it over (`ZMQ_ROUTER_HANDOVER`).
        /// The protocol leaves it off: workers present no routing id, so libzmq gives each connection its own
        /// and no connection can take over another's (docs/security.md, "Worker ids").
        public var routerHandover = false
        /// CURVE encryption and authentication; nil: none (the NULL mechanism, plaintext).
        public var curve: CurveRole?

        public init() {}

        /// The protocol's options on either side: linger 0, the frame size limit, send timeout and back-off.
        public init(timing: ProtocolTiming, identity: String? = nil, curve: CurveRole? = nil) {
            self.identity = identity
            self.curve = curve
            maxMessageBytes = timing.maxMessageBytes
            sendTimeout = timing.sendTimeout
            reconnectInterval = timing.reconnectInitial
            reconnectIntervalMax = timing.reconnectMax
        }
    }

    public let kind: Kind
    private let context: ZMQContext
    private var handle: UnsafeMutableRawPointer?

    public init(_ context: ZMQContext, _ kind: Kind, options: Options = Options()) throws(ZMQError) {
        guard let handle = zmq_socket(context.handle, kind.code) else { throw .last("zmq_socket") }
        self.context = context
        self.kind = kind
        self.handle = handle
        try apply(options)
    }

    deinit { close() }

    /// Closes the socket, keeping unsent messages for up to `linger` (libzmq sends them in the background
    /// until then, and the context's termination waits for them). Idempotent.
    public func close(linger: Duration) {
        if let handle {
            var milliseconds = linger.zmqMilliseconds
            zmq_setsockopt(handle, ZMQ_LINGER, &milliseconds, MemoryLayout<Int32>.size)
        }
        close()
    }

    /// Closes the socket at once (linger 0 by default: unsent messages are discarded). Idempotent.
    public func close() {
        if let handle { zmq_close(handle) }
        handle = nil
    }

    private func apply(_ options: Options) throws(ZMQError) {
        if let identity = options.identity {
            try setOption(ZMQ_ROUTING_ID, Data(identity.utf8), "ZMQ_ROUTING_ID")
        }
        try setOption(ZMQ_LINGER, options.linger.zmqMilliseconds, "ZMQ_LINGER")
        if let limit = options.maxMessageBytes { try setOption(ZMQ_MAXMSGSIZE, Int64(limit), "ZMQ_MAXMSGSIZE") }
        try setOption(ZMQ_SNDTIMEO, options.sendTimeout.map(\.zmqMilliseconds) ?? -1, "ZMQ_SNDTIMEO")
        try setOption(ZMQ_RCVTIMEO, options.receiveTimeout.map(\.zmqMilliseconds) ?? -1, "ZMQ_RCVTIMEO")
        try setOption(ZMQ_RECONNECT_IVL, options.reconnectInterval.zmqMilliseconds, "ZMQ_RECONNECT_IVL")
        if let maximum = options.reconnectIntervalMax {
            try setOption(ZMQ_RECONNECT_IVL_MAX, maximum.zmqMilliseconds, "ZMQ_RECONNECT_IVL_MAX")
        }
        switch options.curve {
        case .server(let pair)?:
            try setOption(ZMQ_CURVE_SERVER, Int32(1), "ZMQ_CURVE_SERVER")
            try setOption(ZMQ_CURVE_SECRETKEY, Data(pair.secretKey.utf8), "ZMQ_CURVE_SECRETKEY")
            // With a domain set, libzmq puts every connection to the ZAP handler.
            try setOption(ZMQ_ZAP_DOMAIN, Data(CurveRole.zapDomain.utf8), "ZMQ_ZAP_DOMAIN")
        case .client(let pair, let serverKey)?:
            try setOption(ZMQ_CURVE_SERVERKEY, Data(serverKey.utf8), "ZMQ_CURVE_SERVERKEY")
            try setOption(ZMQ_CURVE_PUBLICKEY, Data(pair.publicKey.utf8), "ZMQ_CURVE_PUBLICKEY")
            try setOption(ZMQ_CURVE_SECRETKEY, Data(pair.secretKey.utf8), "ZMQ_CURVE_SECRETKEY")
        case nil: break
        }
        if kind == .router {
            try setOption(ZMQ_ROUTER_MANDATORY, Int32(options.routerMandatory ? 1 : 0), "ZMQ_ROUTER_MANDATORY")
            try setOption(ZMQ_ROUTER_HANDOVER, Int32(options.routerHandover ? 1 : 0), "ZMQ_ROUTER_HANDOVER")
        }
    }

    private func setOption<Value>(_ option: Int32, _ value: Value, _ name: String) throws(ZMQError) {
        let rc = withUnsafeBytes(of: value) { zmq_setsockopt(handle, option, $0.baseAddress, $0.count) }
        if rc != 0 { throw .last("zmq_setsockopt(\(name))") }
    }

    private func setOption(_ option: Int32, _ value: Data, _ name: String) throws(ZMQError) {
        let rc = value.withUnsafeBytes { zmq_setsockopt(handle, option, $0.baseAddress, $0.count) }
        if rc != 0 { throw .last("zmq_setsockopt(\(name))") }
    }

    /// ROUTER: whether a send to a routing id without a connection fails (EHOSTUNREACH) rather than
    /// vanishing (`ZMQ_ROUTER_MANDATORY`); libzmq reads it at each send, so it may change at any time.
    public func setRouterMandatory(_ mandatory: Bool) throws(ZMQError) {
        _ = try open()
        try setOption(ZMQ_ROUTER_MANDATORY, Int32(mandatory ? 1 : 0), "ZMQ_ROUTER_MANDATORY")
    }

    /// Binds and returns the endpoint actually bound (`tcp://127.0.0.1:*` becomes its port).
    @discardableResult
    public func bind(_ endpoint: String) throws(ZMQError) -> String {
        guard zmq_bind(try open(), endpoint) == 0 else { throw .last("zmq_bind(\(endpoint))") }
        return try lastEndpoint()
    }

    /// Connects; libzmq (re)connects in the background, and sends queue until it has.
    public func connect(_ endpoint: String) throws(ZMQError) {
        guard zmq_connect(try open(), endpoint) == 0 else { throw .last("zmq_connect(\(endpoint))") }
    }

    /// The endpoint last bound or connected (`ZMQ_LAST_ENDPOINT`).
    public func lastEndpoint() throws(ZMQError) -> String {
        var buffer = [CChar](repeating: 0, count: 1024)
        var size = buffer.count
        guard zmq_getsockopt(try open(), ZMQ_LAST_ENDPOINT, &buffer, &size) == 0 else {
            throw .last("zmq_getsockopt(ZMQ_LAST_ENDPOINT)")
        }
        return String(nulTerminated: buffer)
    }

    /// Sends `frames` as one multipart message; a ROUTER's first frame is the peer's identity.
    /// Fails with EAGAIN when it cannot be queued within the send timeout (at once when not `waiting`).
    public func send(_ frames: [Data], waiting: Bool = true) throws(ZMQError) {
        let socket = try open()
        for (index, frame) in frames.enumerated() {
            let flags = (index < frames.count - 1 ? ZMQ_SNDMORE : 0) | (waiting ? 0 : ZMQ_DONTWAIT)
            while true {
                let rc = frame.withUnsafeBytes { zmq_send(socket, $0.baseAddress, $0.count, flags) }
                if rc >= 0 { break }
                // libzmq sends a multipart message atomically, so a retry after EINTR cannot interleave.
                if zmq_errno() != EINTR { throw .last("zmq_send") }
            }
        }
    }

    /// The next multipart message, or nil if none arrives within `timeout` — or, when `descriptor` is
    /// given, nil as soon as that file descriptor has something to read (another thread's wake-up call).
    public func receive(timeout: Duration, wakingFor descriptor: Int32? = nil) throws(ZMQError) -> [Data]? {
        try receiveMessage(timeout: timeout, wakingFor: descriptor)?.frames
    }

    /// A multipart message as it arrived: at most the frames asked for, how many there were, and who sent it.
    public struct Received: Sendable, Equatable {
        /// The first frames, up to `keepingAtMost`; the rest were read and discarded.
        public var frames: [Data]
        /// How many frames the message had.
        public var frameCount: Int
        /// On a CURVE socket, the user id the ZAP handler gave the sender's connection (its public key);
        /// nil without one (the NULL mechanism).
        public var userID: String?
    }

    /// Like `receive`, but keeps only the first `keepingAtMost` frames — a peer sending thousands of frames
    /// costs their reading, never their memory — and reports the sender's ZAP user id (`User-Id`).
    public func receiveMessage(timeout: Duration, wakingFor descriptor: Int32? = nil,
                               keepingAtMost limit: Int = .max) throws(ZMQError) -> Received? {
        guard try Self.poll([self], descriptors: descriptor.map { [$0] } ?? [], timeout: timeout).contains(0) else { return nil }
        let socket = try open()
        var received = Received(frames: [], frameCount: 0, userID: nil)
        var more = true
        while more {
            var message = zmq_msg_t()
            zmq_msg_init(&message)
            defer { zmq_msg_close(&message) }
            // The first frame is there (poll said so); the rest of a multipart message arrives with it.
            if zmq_msg_recv(&message, socket, received.frameCount == 0 ? ZMQ_DONTWAIT : 0) < 0 {
                let error = ZMQError.last("zmq_msg_recv")
                if error.code == EINTR { continue }
                if error.code == EAGAIN && received.frameCount == 0 { return nil }
                throw error
            }
            received.frameCount += 1
            if received.frames.count < limit {
                received.frames.append(Data(bytes: zmq_msg_data(&message), count: zmq_msg_size(&message)))
            }
            // A ROUTER makes the routing-id frame itself, without the connection's properties: read the next.
            if received.userID == nil, let user = zmq_msg_gets(&message, "User-Id") { received.userID = String(cString: user) }
            more = zmq_msg_more(&message) != 0
        }
        return received
    }

    /// Waits up to `timeout` for any of `sockets` to have a message, or any of `descriptors` to be readable;
    /// returns the indices of those that are (descriptors counted after the sockets).
    public static func poll(_ sockets: [ZMQSocket], descriptors: [Int32] = [], timeout: Duration) throws(ZMQError) -> [Int] {
        var items: [zmq_pollitem_t] = []
        for socket in sockets {
            items.append(zmq_pollitem_t(socket: try socket.open(), fd: 0, events: Int16(ZMQ_POLLIN), revents: 0))
        }
        for descriptor in descriptors {
            items.append(zmq_pollitem_t(socket: nil, fd: descriptor, events: Int16(ZMQ_POLLIN), revents: 0))
        }
        let deadline = ContinuousClock.now + timeout
        while true {
            let remaining = max(.zero, deadline - ContinuousClock.now)
            let count = zmq_poll(&items, Int32(items.count), Int(remaining.zmqMilliseconds))
            if count >= 0 { break }
            let error = ZMQError.last("zmq_poll")
            // A signal interrupts the wait; keep waiting until the deadline.
            if error.code != EINTR { throw error }
        }
        return items.indices.filter { items[$0].revents & Int16(ZMQ_POLLIN) != 0 }
    }

    /// Publishes this socket's connection events (ZMQ_EVENT_*) on an inproc `endpoint` for a `.pair` socket to read.
    public func monitor(_ endpoint: String, events: Int32) throws(ZMQError) {
        guard zmq_socket_monitor(try open(), endpoint, events) == 0 else { throw .last("zmq_socket_monitor") }
    }

    private func open() throws(ZMQError) -> UnsafeMutableRawPointer {
        guard let handle else { throw ZMQError(operation: "use of a closed socket", code: ENOTSOCK) }
        return handle
    }
}

/// One event from a socket monitor: `ZMQ_EVENT_*`, its value (an fd or errno) and the peer's endpoint.
public struct ZMQMonitorEvent: Sendable, Equatable {
    public var event: UInt16
    public var value: UInt32
    public var endpoint: String

    /// Parses a monitor message: a 6-byte frame (event, value; native byte order) and the endpoint.
    public init?(_ frames: [Data]) {
        guard frames.count == 2, frames[0].count == 6 else { return nil }
        (event, value) = frames[0].withUnsafeBytes {
            ($0.loadUnaligned(as: UInt16.self), $0.loadUnaligned(fromByteOffset: 2, as: UInt32.self))
        }
        endpoint = String(decoding: frames[1], as: UTF8.self)
    }
}
