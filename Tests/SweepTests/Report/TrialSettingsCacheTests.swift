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
