// ZAPHandler: libzmq's ZeroMQ Authentication Protocol (RFC 27) handler for the
// coordinator's CURVE socket. libzmq asks it, on `inproc://zeromq.zap.01` of the
// same context, about every new connection before any message of that peer
// reaches the socket; it answers 200 for a public key on the allow-list, 400
// otherwise. It runs on its own thread (its REP socket is that thread's alone)
// and re-reads the allow-list at each request, so a revoke applies to the next
// connection. Denials are counted and logged — with, from the socket's monitor,
// peers refused before ZAP is asked (no key: the NULL mechanism against CURVE).
import CZMQ
import Foundation
import Logging

public final class ZAPHandler: Sendable {
    /// Where libzmq sends ZAP requests (fixed by RFC 27).
    public static let endpoint = "inproc://zeromq.zap.01"

    private let state = ZAPState()

    /// Starts the handler; returns once it is bound, so that a CURVE socket made after it is never unguarded.
    /// `handshakeEvents`: an inproc endpoint the guarded socket will publish its handshake failures on (`watch`).
    public init(_ context: ZMQContext, allowList: URL, handshakeEvents: String, logger: Logger) throws(ZMQError) {
        let state = self.state
        let bound = DispatchSemaphore(value: 0)
        let failure = ZAPBindResult()
        let thread = Thread {
            let socket: ZMQSocket, events: ZMQSocket
            do throws(ZMQError) {
                socket = try ZMQSocket(context, .rep)
                try socket.bind(Self.endpoint)
                // inproc allows connecting before the monitor binds.
                events = try ZMQSocket(context, .pair)
                try events.connect(handshakeEvents)
            } catch {
                failure.error = error
                bound.signal()
                return
            }
            bound.signal()
            Self.serve(socket, events: events, allowList: allowList, state: state, logger: logger)
            socket.close()
            events.close()
        }
        thread.name = "factsweep.zap"
        thread.start()
        bound.wait()
        if let error = failure.error { throw error }
    }

    deinit { state.stop() }

    /// Stops answering (within a poll interval) and closes its socket. libzmq then admits CURVE connections
    /// without asking anyone (it only refuses them with the draft `ZMQ_ZAP_ENFORCE_DOMAIN`, which Debian's
    /// build lacks), and their messages carry no user id: `CoordinatorEndpoint.receive` drops those.
    public func stop() { state.stop() }

    /// Connections refused so far (not on the allow-list, wrong mechanism, unreadable list).
    public var denials: Int { state.counts.denied }
    /// Connections admitted so far.
    public var admissions: Int { state.counts.admitted }

    /// The handshake failures a guarded socket's monitor should publish: those ZAP is never asked about.
    public static let handshakeFailures = ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL | ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL

    private static func serve(_ socket: ZMQSocket, events: ZMQSocket, allowList: URL, state: ZAPState, logger: Logger) {
        while !state.isStopped {
            do {
                let ready = try ZMQSocket.poll([socket, events], timeout: .milliseconds(100))
                if ready.contains(0), let request = try socket.receive(timeout: .zero) {
                    try socket.send(answer(request, allowList: allowList, state: state, logger: logger))
                }
                if ready.contains(1), let frames = try events.receive(timeout: .zero), let event = ZMQMonitorEvent(frames) {
                    let total = state.count(admitted: false)
                    logger.warning("refused a connection", metadata: [
                        "address": "\(event.endpoint)", "reason": "handshake failed before authentication (no CURVE key?)",
                        "protocol_error": "0x\(String(event.value, radix: 16))", "denials": "\(total)",
                    ])
                }
            } catch {
                logger.error("ZAP handler: socket error; new connections carry no key and their messages are dropped",
                             metadata: ["error": "\(error)"])
                state.stop()
            }
        }
    }

    /// The reply to one request: `1.0`, request id, status code and text, user id (the public key), metadata.
    static func answer(_ request: [Data], allowList: URL, state: ZAPState, logger: Logger) -> [Data] {
        func reply(_ code: String, _ text: String, user: String = "") -> [Data] {
            [Data("1.0".utf8), request.count > 1 ? request[1] : Data(), Data(code.utf8), Data(text.utf8), Data(user.utf8), Data()]
        }
        // version, request id, domain, address, routing id, mechanism, credentials…
        guard request.count >= 6, request[0] == Data("1.0".utf8) else {
            state.count(admitted: false)
            logger.warning("ZAP handler: malformed request refused", metadata: ["frames": "\(request.count)"])
            return reply("400", "malformed ZAP request")
        }
        let address = String(decoding: request[3], as: UTF8.self)
        let mechanism = String(decoding: request[5], as: UTF8.self)
        func deny(_ reason: String, key: String = "") -> [Data] {
            let total = state.count(admitted: false)
            logger.warning("refused a connection", metadata: [
                "address": "\(address)", "mechanism": "\(mechanism)", "key": "\(key)", "reason": "\(reason)", "denials": "\(total)",
            ])
            return reply("400", reason)
        }
        guard mechanism == "CURVE", request.count >= 7, let key = Curve.encode(request[6]) else {
            return deny("only CURVE clients with a key are admitted")
        }
        let list: AllowList
        do { list = try AllowList.read(allowList) } catch {
            logger.error("ZAP handler: cannot read the allow-list; refusing every connection", metadata: ["error": "\(error)"])
            return deny("allow-list unreadable", key: key)
        }
        guard let entry = list.entries.first(where: { $0.key == key }) else { return deny("public key not on the allow-list", key: key) }
        state.count(admitted: true)
        logger.info("admitted a connection", metadata: ["address": "\(address)", "key": "\(entry.name.isEmpty ? key : entry.name)"])
        // The user id travels with every message of the connection (`User-Id`): the coordinator binds a
        // worker id to it at hello and checks it on each message. The key, not its name: names may repeat.
        return reply("200", "OK", user: key)
    }
}

/// The handler's stop flag and counters, shared with its thread.
final class ZAPState: @unchecked Sendable {
    private let lock = NSLock()
    private var stopped = false
    private var admitted = 0, denied = 0

    var isStopped: Bool { lock.withLock { stopped } }
    func stop() { lock.withLock { stopped = true } }
    var counts: (admitted: Int, denied: Int) { lock.withLock { (admitted, denied) } }

    /// Counts one answer; returns the new total of its kind.
    @discardableResult
    func count(admitted isAdmitted: Bool) -> Int {
        lock.withLock {
            if isAdmitted { admitted += 1; return admitted }
            denied += 1
            return denied
        }
    }
}

/// The handler thread's bind error, read after the semaphore.
private final class ZAPBindResult: @unchecked Sendable {
    var error: ZMQError?
}
