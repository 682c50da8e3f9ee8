// Violation: why the coordinator refused a message of an admitted peer. A fixed
// set, so that the counters a peer can make the coordinator keep stay bounded
// whatever the peer sends (the reason's text, with the peer's own values in it,
// goes to the log and to the peer, never into a key).
import Foundation

/// A kind of protocol violation, counted by `CoordinatorServer.violations`.
public enum Violation: String, CaseIterable, Sendable, Codable {
    /// A hello whose worker id, session or threads are unusable.
    case invalidHello = "invalid_hello"
    /// A hello under a worker id another live process holds (issue 11's duplicate ids, or a thief).
    case duplicateWorker = "duplicate_worker"
    /// A hello under a second worker id on a connection that already said hello under another.
    case secondWorkerID = "second_worker_id"
    /// A hello or message from a key other than the one the worker id was bound to at its first hello.
    case foreignKey = "foreign_key"
    /// More distinct workers than the coordinator keeps state for.
    case tooManyWorkers = "too_many_workers"
    /// `ready` claiming more slots than the hello's threads.
    case overclaimedSlots = "overclaimed_slots"
    /// A result for an attempt the store gave to another worker, or for another trial than the attempt's.
    case foreignAttempt = "foreign_attempt"
    /// A result for an epoch beyond the trial's plan.
    case beyondPlan = "beyond_plan"
    /// A checkpoint whose path is outside the run's checkpoint directory.
    case checkpointOutsideRun = "checkpoint_outside_run"
    /// A write the store refused (an unknown trial, a transition the trial's state forbids).
    case refusedWrite = "refused_write"
    /// A message whose handling failed for a reason no other kind names (a database constraint, a case no
    /// rule foresaw): undone whole and refused, never the end of the sweep.
    case unhandled = "unhandled"
    /// A message only the coordinator sends.
    case coordinatorMessage = "coordinator_message"
}
