// ZMQContext: libzmq's context, and its errors as values.
import CZMQ
import Foundation

/// A failed libzmq call: which one, its errno and libzmq's text for it.
public struct ZMQError: Error, Sendable, Equatable, CustomStringConvertible {
    public var operation: String
    public var code: Int32
    public var message: String

    public init(operation: String, code: Int32) {
        self.operation = operation
        self.code = code
        message = String(cString: zmq_strerror(code))
    }

    /// The error of the libzmq call that just failed on this thread.
    static func last(_ operation: String) -> ZMQError { ZMQError(operation: operation, code: zmq_errno()) }

    public var description: String { "\(operation): \(message) (errno \(code))" }
}

/// One libzmq context per process (or per test). Contexts are thread-safe; sockets are not.
/// The context is terminated when the last socket made from it is gone (each socket keeps it alive).
public final class ZMQContext: @unchecked Sendable {
    let handle: UnsafeMutableRawPointer

    public init() throws(ZMQError) {
        guard let handle = zmq_ctx_new() else { throw .last("zmq_ctx_new") }
        self.handle = handle
    }

    deinit {
        // Every socket is closed by now (they hold the context), so this does not block on lingering sends.
        while zmq_ctx_term(handle) != 0 && zmq_errno() == EINTR {}
    }
}

extension String {
    /// The text of a C buffer libzmq filled, up to its first NUL.
    init(nulTerminated buffer: [CChar]) {
        self.init(decoding: buffer.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
