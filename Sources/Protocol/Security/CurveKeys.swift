// CurveKeys: libzmq's CURVE key pairs as Z85 text (40 characters for 32
// bytes), made by libzmq itself (`zmq_curve_keypair`, libsodium underneath).
// Which keys a process holds and what each proves: docs/security.md.
import CZMQ
import Foundation

/// A refused key or key file, worded so that the user knows what to do.
public struct KeyError: Error, Sendable, Equatable, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// A CURVE key pair; `secretKey` never leaves the host it was made on.
public struct CurveKeyPair: Sendable, Equatable {
    public var publicKey: String
    public var secretKey: String

    /// A checked pair: both keys are valid Z85 CURVE keys.
    public init(publicKey: String, secretKey: String) throws(KeyError) {
        self.publicKey = try Curve.checkedKey(publicKey, what: "public key")
        self.secretKey = try Curve.checkedKey(secretKey, what: "secret key")
        guard Curve.publicKey(forSecret: self.secretKey) == self.publicKey else {
            throw KeyError("the public key does not belong to the secret key (the key file was edited or mixed up)")
        }
    }

    /// A new random pair; fails when this libzmq was built without CURVE.
    public static func generate() throws(KeyError) -> CurveKeyPair {
        try Curve.requireSupport()
        var publicText = [CChar](repeating: 0, count: 41), secretText = [CChar](repeating: 0, count: 41)
        guard zmq_curve_keypair(&publicText, &secretText) == 0 else {
            throw KeyError("zmq_curve_keypair failed: \(String(cString: zmq_strerror(zmq_errno())))")
        }
        return try CurveKeyPair(publicKey: String(nulTerminated: publicText), secretKey: String(nulTerminated: secretText))
    }
}

/// libzmq's CURVE support and Z85 keys.
public enum Curve {
    /// Whether this libzmq can do CURVE (Debian's is built with libsodium).
    public static var isSupported: Bool { zmq_has("curve") != 0 }

    static func requireSupport() throws(KeyError) {
        guard isSupported else {
            throw KeyError("this libzmq was built without CURVE (zmq_has(\"curve\") is false): install a libzmq built with libsodium")
        }
    }

    /// `text` trimmed, if it is a 40-character Z85 encoding of 32 bytes.
    public static func checkedKey(_ text: String, what: String) throws(KeyError) -> String {
        let key = text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard key.utf8.count == 40, decode(key) != nil else {
            throw KeyError("\(what) '\(key.prefix(48))' is not a CURVE key (40 Z85 characters, as `factsweep keys create` writes)")
        }
        return key
    }

    /// The 32 bytes of a Z85 key, or nil if `key` is not valid Z85.
    static func decode(_ key: String) -> [UInt8]? {
        var bytes = [UInt8](repeating: 0, count: 32)
        guard key.utf8.count == 40, zmq_z85_decode(&bytes, key) != nil else { return nil }
        return bytes
    }

    /// The Z85 text of 32 key bytes (a ZAP request carries the client's public key as bytes).
    static func encode(_ bytes: Data) -> String? {
        guard bytes.count == 32 else { return nil }
        var text = [CChar](repeating: 0, count: 41)
        let ok = bytes.withUnsafeBytes { zmq_z85_encode(&text, $0.bindMemory(to: UInt8.self).baseAddress, 32) != nil }
        return ok ? String(nulTerminated: text) : nil
    }

    /// The public key that belongs to a Z85 secret key.
    static func publicKey(forSecret secret: String) -> String? {
        var publicText = [CChar](repeating: 0, count: 41)
        return zmq_curve_public(&publicText, secret) == 0 ? String(nulTerminated: publicText) : nil
    }
}
