// WorkerIdentity: what a worker id may be. The id is a ROUTER routing identity,
// a store key and a log field; an admitted but buggy or hostile peer must not
// grow the coordinator's per-worker state with huge ids or smuggle control
// characters into its logs.
import Foundation

public enum WorkerIdentity {
    /// Longer than any `<hostname>-<pid>` (a hostname label is at most 63 characters).
    public static let maxLength = 128

    /// nil if `id` is usable, else why not.
    public static func problem(_ id: String) -> String? {
        if id.isEmpty || id.utf8.count > maxLength { return "worker id must be 1 to \(maxLength) bytes" }
        guard id.unicodeScalars.allSatisfy({ $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || "-_.:@".unicodeScalars.contains($0)) }) else {
            return "worker id may hold only ASCII letters, digits and - _ . : @"
        }
        return nil
    }

    /// Longer than a UUID, the session a worker makes.
    public static let maxSessionLength = 64

    /// nil if `session` (hello's) is usable, else why not: it keys the delivery ledger, so it is bounded too.
    public static func sessionProblem(_ session: String) -> String? {
        if session.isEmpty || session.utf8.count > maxSessionLength { return "session must be 1 to \(maxSessionLength) bytes" }
        guard session.unicodeScalars.allSatisfy({ $0.isASCII && $0.value > 0x20 && $0.value < 0x7F }) else {
            return "session may hold only printable ASCII"
        }
        return nil
    }
}
