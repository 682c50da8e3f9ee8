// TrialKey and AttemptID: how the sweep names a trial and one attempt at it,
// the same in the spec's plan, the store and every protocol message.

/// A trial's deterministic key: the SHA-256 of its canonical configuration.
public typealias TrialKey = String

/// One attempt at a trial: the store's row id, fencing every later message.
public typealias AttemptID = Int64
