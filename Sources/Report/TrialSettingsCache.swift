// TrialSettingsCache: trials' decoded settings kept across reads of one run
// database, so that a reader that reads the same run again and again (the live
// dashboard, every poll) decodes each trial's configuration once.
import Foundation

/// Decoded `TrialSettings` by trial key. A trial's configuration never changes
/// once stored: its key is the hash of that configuration, and adding a sweep
/// refuses a different configuration under a stored key. Decoding them was 46%
/// of a dashboard poll at 100,000 trials (docs/benchmarks.md, "Live dashboard at
/// 100,000 trials"). Settings that several trials share (a condition's seeds)
/// are kept once.
public final class TrialSettingsCache: @unchecked Sendable {
    private let lock = NSLock()
    /// nil: the configuration could not be read.
    private var byKey: [String: TrialSettings?] = [:]
    /// Each distinct settings once; the values of `byKey` are these.
    private var distinct: Set<TrialSettings> = []

    public init() {}

    /// Trials whose settings are held.
    var count: Int { lock.withLock { byKey.count } }

    /// The settings of trial `key`; `config` gives its stored configuration, read only on the key's first use.
    func settings(key: String, config: () -> String?) -> TrialSettings? {
        if let held = lock.withLock({ byKey[key] }) { return held }
        let decoded = config().flatMap(TrialSettings.init(configJSON:))
        return lock.withLock {
            let shared = decoded.map { distinct.insert($0).memberAfterInsert }
            byKey[key] = .some(shared)
            return shared
        }
    }
}
