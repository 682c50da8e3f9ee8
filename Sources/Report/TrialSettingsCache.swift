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
    /// Index into `distinct` per trial key; -1: the configuration could not be read.
    private var indexByKey: [String: Int] = [:]
    private var distinct: [TrialSettings] = []
    private var indexOfDistinct: [TrialSettings: Int] = [:]

    public init() {}

    /// Trials whose settings are held.
    public var count: Int { lock.withLock { indexByKey.count } }

    /// The settings of trial `key`; `config` gives its stored configuration, read only on the key's first use.
    func settings(key: String, config: () -> String?) -> TrialSettings? {
        if let index = lock.withLock({ indexByKey[key] }) { return index < 0 ? nil : lock.withLock { distinct[index] } }
        let settings = config().flatMap(TrialSettings.init(configJSON:))
        return lock.withLock {
            guard let settings else {
                indexByKey[key] = -1
                return nil
            }
            let index = indexOfDistinct[settings] ?? {
                distinct.append(settings)
                indexOfDistinct[settings] = distinct.count - 1
                return distinct.count - 1
            }()
            indexByKey[key] = index
            return distinct[index]
        }
    }
}
