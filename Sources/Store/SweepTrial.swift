// SweepTrial and AddedSweep: what a sweep hands the store, and what adding it changed.
import Foundation
import Trial

/// One trial of a sweep, as the sweep's expansion produced it.
public struct SweepTrial: Sendable, Equatable {
    /// The deterministic key of `config`, computed by the sweep; opaque here.
    public var key: String
    /// The condition (arm of the study) this trial belongs to; trials of one
    /// condition differ only in seed or other replicates.
    public var condition: String
    public var config: TrialConfig
    /// `config.canonicalJSON()` when the caller has it already (a sweep plan made it for the key), so
    /// that `addSweep` does not encode the configuration again; nil: `addSweep` encodes it. Trusted, not
    /// checked (checking is the encode it saves): bytes of another configuration would be stored beside
    /// `config`'s indexed settings.
    public var canonicalConfig: Data?

    public init(key: String, condition: String, config: TrialConfig, canonicalConfig: Data? = nil) {
        self.key = key; self.condition = condition; self.config = config; self.canonicalConfig = canonicalConfig
    }
}

/// What `RunStore.addSweep` did.
public struct AddedSweep: Sendable, Equatable {
    public var sweepID: Int64
    /// Trials inserted by this call.
    public var newTrials: Int
    /// Trials whose key was already in the database (left as they were).
    public var existingTrials: Int
}
