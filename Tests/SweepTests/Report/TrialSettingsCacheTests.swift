// TrialSettingsCache: a trial's configuration is decoded on its key's first
// use only, an unreadable one stays nil, and a snapshot read through the cache
// equals one read without it.
import Foundation
import GRDB
import Testing
import TestSupport
@testable import Report

@Suite struct TrialSettingsCacheTests {
    @Test func eachKeyIsDecodedOnce() throws {
        let cache = TrialSettingsCache()
        var reads = 0
        let config = #"{"training": {"seed": 3, "precision": "bf16", "method": {"rank": 8}}}"#
        let first = cache.settings(key: "a") { reads += 1; return config }
        let second = cache.settings(key: "a") { reads += 1; return #"{"changed": true}"# }
        #expect(reads == 1 && first == second)
        #expect(first?.values == ["training.precision": "bf16", "training.method.rank": "8"])
        #expect(first == TrialSettings(configJSON: config))
        // Another seed of the same settings.
        #expect(cache.settings(key: "b") { #"{"training": {"seed": 4, "precision": "bf16", "method": {"rank": 8}}}"# } == first)
        #expect(cache.settings(key: "bad") { reads += 1; return "not json" } == nil)
        #expect(cache.settings(key: "bad") { reads += 1; return config } == nil)
        #expect(reads == 2 && cache.count == 3)
    }

    @Test func aSnapshotReadThroughTheCacheIsTheSame() throws {
        let folder = try TemporaryDirectory()
        let path = try SyntheticStudy.write(in: folder)
        let queue = try RunSnapshotReader.openReadOnly(path: path)
        let cache = TrialSettingsCache()
        let plain = try queue.read { try RunSnapshotReader.read($0, path: path) }
        let cached = try queue.read { try RunSnapshotReader.read($0, path: path, settings: cache) }
        let again = try queue.read { try RunSnapshotReader.read($0, path: path, settings: cache) }
        #expect(plain.trials.count == 10 && plain.epochs.count == SyntheticStudy.epochRows())
        #expect(cached == plain && again == plain && cache.count == 10)
        #expect(plain.trials.allSatisfy { $0.settings != nil })
    }
}

/// `RunSnapshot.epochsByTrial`: the one-pass grouping equals grouping by key, with rows in trial order,
/// out of it, and for trials without rows.
@Suite struct EpochsByTrialTests {
    static func byKey(_ snapshot: RunSnapshot) -> [[ReportEpoch]] {
        snapshot.trials.map { trial in snapshot.epochs.filter { $0.trialKey == trial.key } }
    }

    @Test func groupsAsByKeyInOrderAndOutOfIt() {
        var snapshot = SyntheticStudy.snapshot(SyntheticStudy.conditions, plannedEpochs: 20)
        #expect(snapshot.trials.count == 10 && snapshot.epochs.count > 100)
        #expect(snapshot.epochsByTrial() == Self.byKey(snapshot))
        // Two trials with no rows, one of them the first.
        let keys = [snapshot.trials[0].key, snapshot.trials[4].key]
        snapshot.epochs.removeAll { keys.contains($0.trialKey) }
        let grouped = snapshot.epochsByTrial()
        #expect(grouped == Self.byKey(snapshot) && grouped[0].isEmpty && grouped[4].isEmpty && !grouped[1].isEmpty)
        // Rows of a later trial before an earlier one's: grouped by key instead, each trial's rows in their order.
        snapshot.epochs.reverse()
        #expect(snapshot.epochsByTrial() == Self.byKey(snapshot))
        #expect(snapshot.epochsByTrial()[1].first?.epoch ?? 0 > 1, "reversed rows keep the order they are in")
    }
}
