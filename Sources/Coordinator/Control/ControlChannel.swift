// ControlChannel: how `factsweep retry` and `cancel` reach a running
// coordinator — a ZeroMQ REP socket on `ipc://RUN/control.sock`. A Unix
// socket inside the run directory, made 0600: only the directory's owner (the
// user who runs the sweep) can connect, with no port, key or password to
// manage. One JSON ControlRequest in, one JSON ControlReply out.
import Foundation
import Logging
import Protocol

/// The coordinator's side: polled by its serving loop between batches.
public final class ControlChannel {
    public static let fileName = "control.sock"
    public let socketPath: String
    private let socket: ZMQSocket

    /// Binds `RUN/control.sock` (replacing a socket file a killed coordinator left behind: the caller holds
    /// the run directory's lock, so no live coordinator owns it).
    public init(_ context: ZMQContext, runDirectory: URL) throws {
        socketPath = runDirectory.appendingPathComponent(Self.fileName).path
        unlink(socketPath)
        var options = ZMQSocket.Options()
        options.sendTimeout = .seconds(1)
        socket = try ZMQSocket(context, .rep, options: options)
        let previous = umask(0o077)
        defer { umask(previous) }
        try socket.bind("ipc://\(socketPath)")
        guard chmod(socketPath, 0o600) == 0 else {
            throw CoordinatorError("cannot restrict \(socketPath) to its owner: \(String(cString: strerror(errno)))")
        }
    }

    /// The next request, if one is waiting; a malformed one is answered here with the error.
    public func nextRequest() throws -> ControlRequest? {
        guard let frames = try socket.receive(timeout: .zero) else { return nil }
        do {
            guard frames.count == 1 else { throw CoordinatorError("a control request is one frame, not \(frames.count)") }
            return try JSONDecoder().decode(ControlRequest.self, from: frames[0])
        } catch {
            try answer(ControlReply(errors: ["unreadable control request: \(error)"]))
            return nil
        }
    }

    /// Answers the request last returned by `nextRequest`.
    public func answer(_ reply: ControlReply) throws {
        try socket.send([try JSONEncoder().encode(reply)])
    }

    public func close() {
        socket.close()
        unlink(socketPath)
    }

    /// The command's side: sends `request` to the coordinator serving `runDirectory` and waits up to
    /// `timeout` for its reply.
    public static func request(_ request: ControlRequest, runDirectory: URL, timeout: Duration = .seconds(10)) throws -> ControlReply {
        let path = runDirectory.appendingPathComponent(fileName).path
        guard FileManager.default.fileExists(atPath: path) else {
            throw CoordinatorError("a coordinator holds \(runDirectory.path) but has no control socket (\(path)); is it an older FactSweep?")
        }
        let socket = try ZMQSocket(try ZMQContext(), .req)
        defer { socket.close() }
        try socket.connect("ipc://\(path)")
        try socket.send([try JSONEncoder().encode(request)])
        guard let frames = try socket.receive(timeout: timeout), let frame = frames.first else {
            throw CoordinatorError("the coordinator serving \(runDirectory.path) did not answer within \(timeout)")
        }
        return try JSONDecoder().decode(ControlReply.self, from: frame)
    }
}
