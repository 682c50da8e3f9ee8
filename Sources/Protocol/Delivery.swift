// Delivery: the two halves of at-least-once delivery (docs/protocol.md,
// "Delivery") — the worker's outbox of unacknowledged results and the
// coordinator's ledger that applies each result once.
import Foundation

/// A worker's result messages, numbered within its session and kept until acknowledged.
public struct Outbox: Sendable {
    /// Sent in `hello`; a new process is a new session, whose ids start again at 1.
    public let session: String
    private var nextID: MessageID = 1
    /// In id order: what to resend after each `hello` on a new connection.
    public private(set) var unacknowledged: [Message] = []

    public init(session: String = UUID().uuidString) { self.session = session }

    /// Numbers a result message (`make` is given the id to put in it), keeps it, and returns it for sending.
    public mutating func add(_ make: (MessageID) -> Message) -> Message {
        let message = make(nextID)
        assert(message.messageID == nextID, "a result message must carry the id it was given")
        nextID += 1
        unacknowledged.append(message)
        return message
    }

    /// Forgets the acknowledged messages.
    public mutating func acknowledge(_ ids: [MessageID]) {
        let acknowledged = Set(ids)
        unacknowledged.removeAll { $0.messageID.map(acknowledged.contains) ?? true }
    }
}

/// Which result messages the coordinator has applied, per worker session: ids may arrive twice and,
/// after a reconnect, out of order.
public struct DeliveryLedger: Sendable {
    private struct Seen: Sendable {
        var session: String
        /// Every id below this has been seen.
        var contiguous: MessageID = 1
        /// Ids seen above `contiguous`, waiting for the gap to close.
        var beyond: Set<MessageID> = []
    }

    private var workers: [String: Seen] = [:]

    /// The most ids kept above a gap per worker. A gap that never closes (ids a restarted coordinator never
    /// saw, or a peer numbering sparsely on purpose) would otherwise grow the set with every message; past
    /// the bound the lowest kept id becomes the contiguous mark. The store's own rules (an epoch once, one
    /// verdict per attempt) still apply what such an id carries once.
    public static let maxBeyond = 1024

    public init() {}

    /// Whether this is the first arrival of `id` from `workerID`'s `session`, recording it. A new session
    /// of a worker (a restarted process) forgets the old one's ids.
    public mutating func firstDelivery(of id: MessageID, from workerID: String, session: String) -> Bool {
        var seen = workers[workerID].flatMap { $0.session == session ? $0 : nil } ?? Seen(session: session)
        defer { workers[workerID] = seen }
        guard id >= seen.contiguous, seen.beyond.insert(id).inserted else { return false }
        if seen.beyond.count > Self.maxBeyond, let lowest = seen.beyond.min() { seen.contiguous = lowest }
        // `Message.decode` admits ids up to `maxMessageID` only; the bound keeps the walk from trapping whatever calls it.
        while seen.contiguous < .max, seen.beyond.remove(seen.contiguous) != nil { seen.contiguous += 1 }
        return true
    }

    /// Ids kept above `workerID`'s gap (at most `maxBeyond`).
    func idsBeyondGap(of workerID: String) -> Int { workers[workerID]?.beyond.count ?? 0 }

    /// Forgets that `id` arrived, so that its resend is applied: for a result the coordinator refused
    /// without applying it (an epoch before it is missing) and did not acknowledge.
    public mutating func forget(_ id: MessageID, from workerID: String, session: String) {
        guard var seen = workers[workerID], seen.session == session else { return }
        defer { workers[workerID] = seen }
        if id >= seen.contiguous {
            seen.beyond.remove(id)
            return
        }
        // `id` is below the contiguous mark: the ids between it and the mark stay seen.
        if id + 1 < seen.contiguous { seen.beyond.formUnion((id + 1)..<seen.contiguous) }
        seen.contiguous = id
    }
}
