// AttemptAssignment: whom the store gave an attempt to, on which trial, and
// how many epochs that trial plans — what the coordinator checks a worker's
// result against before applying it (an admitted worker reports only on its
// own attempts, and only within the plan).
import Foundation
import GRDB
import Trial

/// An attempt as the store handed it out.
public struct AttemptAssignment: Sendable, Equatable {
    public var trialKey: String
    public var workerID: String
    /// The trial's planned epochs (`trials.epochs`).
    public var plannedEpochs: Int
}

extension RunTransaction {
    /// The attempt `attemptID`, or nil when the store never made it.
    public func assignment(of attemptID: AttemptID) throws -> AttemptAssignment? {
        let row = try Row.fetchOne(db.cachedStatement(sql: """
            SELECT a.trial_key, a.worker_id, t.epochs FROM attempts a JOIN trials t ON t.key = a.trial_key
            WHERE a.attempt_id = ?
            """), arguments: [attemptID])
        return row.map { AttemptAssignment(trialKey: $0["trial_key"], workerID: $0["worker_id"], plannedEpochs: $0["epochs"]) }
    }
}
