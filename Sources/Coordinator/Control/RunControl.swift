// RunControl: the user's changes to a run's trials — `factsweep retry` and
// `factsweep cancel` — applied in one store transaction by whoever holds the
// run directory: the command itself when no coordinator runs (it takes the
// directory's lock), the coordinator when one does (reached over its control
// socket, ControlChannel), which also tells the worker of a cancelled attempt.
import Foundation
import Store
import Trial

/// What the user asks of a run.
public struct ControlRequest: Codable, Sendable, Equatable {
    public enum Action: String, Codable, Sendable {
        /// Failed or cancelled trials back to pending (pending ones stop backing off), with a fresh retry budget.
        case retry
        /// Trials that have not ended become `cancelled`; a running attempt is stopped.
        case cancel
    }

    public var action: Action
    /// Trial keys, or unique prefixes of them.
    public var keys: [String]
    /// `retry` only: every failed trial too.
    public var failed: Bool

    public init(action: Action, keys: [String], failed: Bool = false) {
        self.action = action; self.keys = keys; self.failed = failed
    }
}

/// What was done: the trials changed (full keys) and, for each key that could not be, why.
public struct ControlReply: Codable, Sendable, Equatable {
    public var changed: [String] = []
    public var errors: [String] = []

    public init(changed: [String] = [], errors: [String] = []) { self.changed = changed; self.errors = errors }
}

public enum RunControl {
    /// Applies `request` in `transaction`. Returns the reply and, for `cancel`, the attempts it ended that
    /// a worker was running (to be told `cancel`). A key that names no trial, names several, or whose
    /// trial cannot make the change is an error of the reply; the other keys are still applied.
    public static func apply(_ request: ControlRequest, in transaction: RunTransaction)
        throws -> (reply: ControlReply, stopped: [(trial: String, workerID: String)]) {
        var reply = ControlReply()
        var stopped: [(trial: String, workerID: String)] = []
        var keys: [String] = []
        for given in request.keys {
            let matches = try transaction.trialKeys(matching: given)
            switch matches.count {
            case 0: reply.errors.append("no trial with key \(given) in this run")
            case 1: keys.append(matches[0])
            default: reply.errors.append("\(given) is the start of \(matches.count) trial keys; give more of the key")
            }
        }
        if request.failed { keys += try transaction.trialKeys(withStatus: .failed).filter { !keys.contains($0) } }
        for key in keys {
            do {
                switch request.action {
                case .retry:
                    try transaction.retryTrial(key)
                case .cancel:
                    let holder = try transaction.holder(of: key)
                    try transaction.cancelTrial(key, reason: "cancelled by the user")
                    if let holder { stopped.append((key, holder.workerID)) }
                }
                reply.changed.append(key)
            } catch let RunStoreError.invalidTransition(_, from, _) {
                reply.errors.append("trial \(key) is \(from.rawValue): it cannot be \(request.action == .retry ? "retried" : "cancelled")")
            }
        }
        return (reply, stopped)
    }
}
