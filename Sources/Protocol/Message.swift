// Message: the whole sweep protocol — version, command codes, one case per
// message with its fields, and the three-frame encoding (docs/protocol.md).
// Not here: sockets (ZMQSocket) and what a peer does with a message
// (Coordinator, Worker).
import Foundation
import Trial

/// The protocol version every message carries in its header frame.
public enum ProtocolVersion {
    /// 2: `progress`, `done` and `assign` carry the Trial module's records
    /// (`EpochReport`, `TrialSummary`, `TrialConfig`) instead of copies of them.
    /// 3: an `assign`'s config may carry settings a worker must honour
    /// (`precision`, AdamW's `moments`, `updateInBackward`): a version-2 worker
    /// would ignore them and train f32 results that are stored as bf16, so it
    /// is turned away at `hello`. `done`'s summary says which engine ran.
    /// 4: a worker refuses an `assign` holding a member it does not know
    /// (`Assign.unknownFields`) instead of ignoring it, so that a setting added
    /// later needs no version of its own: a worker built before it refuses the
    /// trials that set it. A version-3 worker, which would ignore it, is turned away.
    public static let current = 4
    /// Frame 0 of every message: `factsweep/<version>`.
    static let headerPrefix = "factsweep/"

    static func header(_ version: Int) -> Data { Data((headerPrefix + String(version)).utf8) }
}

/// A worker's result message, numbered within its session for acknowledgement.
public typealias MessageID = Int64

/// The command code of each message (frame 1), with its name for logging.
public enum MessageType: UInt8, CaseIterable, Sendable, CustomStringConvertible {
    case hello = 0x01, ready = 0x02, progress = 0x03, checkpoint = 0x04, done = 0x05, failed = 0x06
    case heartbeat = 0x07
    case assign = 0x10, ack = 0x11, cancel = 0x12, drop = 0x13, shutdown = 0x14
    case error = 0x7F

    /// Which kind of peer sends this message.
    public enum Sender: Sendable { case worker, coordinator, either }

    public var sender: Sender {
        switch self {
        case .hello, .ready, .progress, .checkpoint, .done, .failed: .worker
        case .assign, .ack, .cancel, .drop, .shutdown: .coordinator
        case .heartbeat, .error: .either
        }
    }

    public var description: String {
        switch self {
        case .hello: "hello"
        case .ready: "ready"
        case .progress: "progress"
        case .checkpoint: "checkpoint"
        case .done: "done"
        case .failed: "failed"
        case .heartbeat: "heartbeat"
        case .assign: "assign"
        case .ack: "ack"
        case .cancel: "cancel"
        case .drop: "drop"
        case .shutdown: "shutdown"
        case .error: "error"
        }
    }
}

/// One protocol message.
public enum Message: Sendable, Equatable {
    case hello(Hello)
    case ready(Ready)
    case progress(Progress)
    case checkpoint(Checkpoint)
    case done(Done)
    case failed(Failed)
    case heartbeat(Heartbeat)
    case assign(Assign)
    case ack(Ack)
    case cancel(Cancel)
    case drop(Drop)
    case shutdown(Shutdown)
    case error(ErrorReply)

    public var type: MessageType {
        switch self {
        case .hello: .hello
        case .ready: .ready
        case .progress: .progress
        case .checkpoint: .checkpoint
        case .done: .done
        case .failed: .failed
        case .heartbeat: .heartbeat
        case .assign: .assign
        case .ack: .ack
        case .cancel: .cancel
        case .drop: .drop
        case .shutdown: .shutdown
        case .error: .error
        }
    }

    /// The id of a result message, which the worker keeps until it is acknowledged.
    public var messageID: MessageID? {
        switch self {
        case .progress(let m): m.messageID
        case .checkpoint(let m): m.messageID
        case .done(let m): m.messageID
        case .failed(let m): m.messageID
        case .hello, .ready, .heartbeat, .assign, .ack, .cancel, .drop, .shutdown, .error: nil
        }
    }

    /// The trial a result message is about.
    public var resultTrial: TrialKey? {
        switch self {
        case .progress(let m): m.trial
        case .checkpoint(let m): m.trial
        case .done(let m): m.trial
        case .failed(let m): m.trial
        case .hello, .ready, .heartbeat, .assign, .ack, .cancel, .drop, .shutdown, .error: nil
        }
    }

    /// The attempt a result message is about: its arrival shows that the worker has the attempt.
    public var resultAttempt: AttemptID? {
        switch self {
        case .progress(let m): m.attempt
        case .checkpoint(let m): m.attempt
        case .done(let m): m.attempt
        case .failed(let m): m.attempt
        case .hello, .ready, .heartbeat, .assign, .ack, .cancel, .drop, .shutdown, .error: nil
        }
    }
}

// MARK: - Encoding

/// Why a multipart message is not a protocol message; each is answerable with an `error`.
public enum ProtocolError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Not exactly three frames (header, type, body).
    case badFrameCount(Int)
    /// Frame 0 is not `factsweep/<version>`: not this protocol at all.
    case badHeader(Data)
    /// This protocol, another version: the body is not read.
    case wrongVersion(found: Int)
    /// Frame 1 is not one byte naming a known message.
    case unknownType(Data)
    /// The body is not valid JSON for the message, or breaks one of its rules.
    case malformedBody(type: MessageType, reason: String)
    /// A frame over the size limit (libzmq enforces it only on TCP; encode refuses to build one).
    case oversized(bytes: Int, limit: Int)
    /// With CURVE keys: a message whose connection no ZAP handler authenticated (it carries no user id).
    /// libzmq admits such connections once the handler's socket is gone, and Debian's libzmq has no
    /// `ZMQ_ZAP_ENFORCE_DOMAIN` (a draft option) to refuse them at the handshake.
    case unauthenticated

    /// A short name for counters and logs.
    public var label: String {
        switch self {
        case .badFrameCount: "bad_frame_count"
        case .badHeader: "bad_header"
        case .wrongVersion: "wrong_version"
        case .unknownType: "unknown_type"
        case .malformedBody: "malformed_body"
        case .oversized: "oversized"
        case .unauthenticated: "unauthenticated"
        }
    }

    public var description: String {
        switch self {
        case .badFrameCount(let n): "expected 3 frames (header, type, body), got \(n)"
        case .badHeader(let frame): "frame 0 is not \(ProtocolVersion.headerPrefix)<version>: \(preview(frame))"
        case .wrongVersion(let found):
            "speaks \(ProtocolVersion.headerPrefix)\(found); this peer speaks \(ProtocolVersion.headerPrefix)\(ProtocolVersion.current)"
        case .unknownType(let frame): "unknown message type \(preview(frame))"
        case .malformedBody(let type, let reason): "malformed \(type) body: \(reason)"
        case .oversized(let bytes, let limit): "a frame of \(bytes) bytes is over the limit of \(limit)"
        case .unauthenticated: "the connection was not authenticated by a CURVE key on the allow-list"
        }
    }
}

/// Up to 16 bytes as hex, for logs of frames that are not ours.
private func preview(_ frame: Data) -> String {
    let hex = frame.prefix(16).map { String(format: "%02x", $0) }.joined(separator: " ")
    return "[\(frame.count) bytes: \(hex)\(frame.count > 16 ? " …" : "")]"
}

extension Message {
    /// Frames per message: header, type, body.
    public static let frameCount = 3

    /// The three frames of `message`; refuses a frame over `maxFrameBytes`, which libzmq would drop on every resend.
    public static func encode(_ message: Message, maxFrameBytes: Int = ProtocolTiming().maxMessageBytes) throws(ProtocolError) -> [Data] {
        let body: Data
        do {
            body = try wireEncoder().encode(message.body)
        } catch {
            throw .malformedBody(type: message.type, reason: "cannot encode: \(error)")
        }
        guard body.count <= maxFrameBytes else { throw .oversized(bytes: body.count, limit: maxFrameBytes) }
        return [ProtocolVersion.header(ProtocolVersion.current), Data([message.type.rawValue]), body]
    }

    /// The message in `frames` (without a ROUTER's identity frame), or exactly why it is not one.
    public static func decode(_ frames: [Data], maxFrameBytes: Int = ProtocolTiming().maxMessageBytes) throws(ProtocolError) -> Message {
        guard frames.count == frameCount else { throw .badFrameCount(frames.count) }
        if let big = frames.first(where: { $0.count > maxFrameBytes }) {
            throw .oversized(bytes: big.count, limit: maxFrameBytes)
        }
        let version = try headerVersion(frames[0])
        guard version == ProtocolVersion.current else {
            // An error's three frames are the same in every version, so a peer can read why it was turned away.
            if frames[1] == Data([MessageType.error.rawValue]), let reply = try? wireDecoder().decode(ErrorReply.self, from: frames[2]) {
                return .error(reply)
            }
            throw .wrongVersion(found: version)
        }
        guard frames[1].count == 1, let type = MessageType(rawValue: frames[1][frames[1].startIndex]) else {
            throw .unknownType(frames[1])
        }
        do {
            let message = try decodeBody(type, frames[2])
            if let broken = message.brokenRule() { throw ProtocolError.malformedBody(type: type, reason: broken) }
            return message
        } catch let error as ProtocolError {
            throw error
        } catch {
            throw .malformedBody(type: type, reason: (error as? DecodingError)?.shortDescription ?? "\(error)")
        }
    }

    private static func headerVersion(_ frame: Data) throws(ProtocolError) -> Int {
        guard let text = String(data: frame, encoding: .utf8), text.hasPrefix(ProtocolVersion.headerPrefix),
              let version = Int(text.dropFirst(ProtocolVersion.headerPrefix.count)), version >= 0
        else { throw .badHeader(frame) }
        return version
    }

    /// The body's fields; JSON-encoded as frame 2.
    private var body: any Encodable {
        switch self {
        case .hello(let m): m
        case .ready(let m): m
        case .progress(let m): m
        case .checkpoint(let m): m
        case .done(let m): m
        case .failed(let m): m
        case .heartbeat(let m): m
        case .assign(let m): m
        case .ack(let m): m
        case .cancel(let m): m
        case .drop(let m): m
        case .shutdown(let m): m
        case .error(let m): m
        }
    }

    private static func decodeBody(_ type: MessageType, _ body: Data) throws -> Message {
        func read<Body: Decodable>(_: Body.Type) throws -> Body { try wireDecoder().decode(Body.self, from: body) }
        switch type {
        case .hello:
            let hello = try read(Hello.self)
            guard hello.protocolVersion == ProtocolVersion.current else {
                throw ProtocolError.malformedBody(
                    type: type, reason: "protocol_version \(hello.protocolVersion) differs from the header's \(ProtocolVersion.current)")
            }
            return .hello(hello)
        case .ready: return .ready(try read(Ready.self))
        case .progress: return .progress(try read(Progress.self))
        case .checkpoint: return .checkpoint(try read(Checkpoint.self))
        case .done: return .done(try read(Done.self))
        case .failed: return .failed(try read(Failed.self))
        case .heartbeat: return .heartbeat(try read(Heartbeat.self))
        case .assign:
            var assign = try read(Assign.self)
            assign.unknownFields = try UnknownFields.paths(in: body, decoded: assign, encoder: wireEncoder())
            return .assign(assign)
        case .ack: return .ack(try read(Ack.self))
        case .cancel: return .cancel(try read(Cancel.self))
        case .drop: return .drop(try read(Drop.self))
        case .shutdown: return .shutdown(try read(Shutdown.self))
        case .error: return .error(try read(ErrorReply.self))
        }
    }
}

/// The trial records' own coding: non-finite floats (a diverged loss) travel as strings.
private func wireEncoder() -> JSONEncoder { TrialJSON.encoder() }

private func wireDecoder() -> JSONDecoder { TrialJSON.decoder() }
