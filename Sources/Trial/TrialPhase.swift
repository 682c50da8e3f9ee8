// TrialPhase: what an attempt is doing right now, as its worker reports it in
// heartbeats and the run database keeps it (`attempts.phase`) — so that a
// slow evaluation keeps its lease while a stuck training loop loses it, and
// `factsweep status` can say what each worker is busy with.

/// The stage of one attempt, in the order a trial passes through them.
public enum TrialPhase: String, Codable, Sendable, CaseIterable {
    /// Loading the model and data, or putting the resume checkpoint in place.
    case loading
    /// Measuring the held-out perplexity before training.
    case baseline
    /// Optimizer steps: the only phase whose lease needs the step to advance.
    case training
    /// Answering the evaluation questions after an epoch.
    case evaluating
    /// Writing a checkpoint.
    case checkpointing
    /// Writing the final adapter and evaluation files.
    case exporting

    /// Whether the coordinator renews the lease only while the `(epoch, step)` position advances. Every
    /// other phase has no steps to count: its heartbeats (sent from a timer on the worker's socket thread)
    /// renew the lease as long as they come.
    public var renewsOnlyOnProgress: Bool { self == .training }
}
