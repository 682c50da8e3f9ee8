// A coordinator built before a setting, given a run database whose trials (or
// whose sweeps' stopping rules) a newer build stored with it, refuses to serve
// the run (naming the trials or sweeps and the settings, adding nothing) rather
// than hand out trials, or stop them, without the setting.
import Foundation
import GRDB
import Testing
import TestSupport

@Suite(.serialized) struct NewerRunDatabaseTests {
    /// This build's coordinator on the run in `dir/run`, with a sweep of its own ("older"), run to its exit.
    static func coordinatorWithASweepOfItsOwn(_ dir: URL, endpoint: String) throws -> ProcessResult {
        let other = dir.appendingPathComponent("other")
        try FileManager.default.createDirectory(at: other, withIntermediateDirectories: true)
        let otherSpec = try SimulatedSpec.write(in: other, name: "older", epochs: 2, seeds: 1)
        return try FactSweepBinary.run(["coordinator", otherSpec.path, "--bind", endpoint, "--run-dir",
                                        dir.appendingPathComponent("run").path], timeout: 60)
    }

    @Test func aCoordinatorRefusesTrialsWithSettingsItDoesNotRead() throws {
        let dir = try TemporaryDirectory()
        let spec = try SimulatedSpec.write(in: dir.url, name: "newer", epochs: 1, seeds: 2)
        let endpoint = RetryProcessTests.endpoint()
        let first = try RetryProcessTests.coordinator(dir.url, spec: spec, endpoint: endpoint)
        first.stop()
        let db = dir.url.appendingPathComponent("run/run.db")
        // The trial as a newer factsweep would have stored it: with a member this build has no property for.
        let key = try DatabaseQueue(path: db.path).write { db -> String in
            let row = try #require(try Row.fetchOne(db, sql: "SELECT key, config FROM trials ORDER BY rowid LIMIT 1"))
            var object = try #require(try JSONSerialization.jsonObject(with: Data((row["config"] as String).utf8)) as? [String: Any])
            var training = try #require(object["training"] as? [String: Any])
            training["gradientCheckpointing"] = true
            object["training"] = training
            let newer = String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), as: UTF8.self)
            try db.execute(sql: "UPDATE trials SET config = ? WHERE key = ?", arguments: [newer, row["key"] as String])
            return row["key"]
        }
        let second = try Self.coordinatorWithASweepOfItsOwn(dir.url, endpoint: endpoint)
        #expect(second.status != 0, "\(second.stdout)\(second.stderr)")
        #expect(second.stderr.contains("does not read") && second.stderr.contains("training.gradientCheckpointing")
                && second.stderr.contains(String(key.prefix(12))), "\(second.stderr)")
        // Nothing was added, handed out or changed.
        #expect(try SweepProcessTests.rows(db, "SELECT name FROM sweeps").map { $0["name"] as String } == ["newer"])
        let trials = try SweepProcessTests.rows(db, "SELECT status FROM trials")
        #expect(trials.count == 2 && trials.allSatisfy { $0["status"] == "pending" }, "\(trials)")
        #expect(try SweepProcessTests.rows(db, "SELECT COUNT(*) AS n FROM attempts").first?["n"] == 0)
    }

    @Test func aCoordinatorRefusesAnotherSweepsStoppingRulesWithMembersItDoesNotRead() throws {
        let dir = try TemporaryDirectory()
        let spec = try SimulatedSpec.write(in: dir.url, name: "newer", epochs: 1, seeds: 2)
        let endpoint = RetryProcessTests.endpoint()
        try RetryProcessTests.coordinator(dir.url, spec: spec, endpoint: endpoint).stop()
        let db = dir.url.appendingPathComponent("run/run.db")
        // The sweep's rules as a newer factsweep would have stored them: with a member this build does not read.
        let newer = #"{"lora":{"accuracy":0.9,"evaluations":2,"min_epochs":3,"rule":"target"}}"#
        try DatabaseQueue(path: db.path).write { try $0.execute(sql: "UPDATE sweeps SET stopping = ? WHERE name = 'newer'", arguments: [newer]) }
        let second = try Self.coordinatorWithASweepOfItsOwn(dir.url, endpoint: endpoint)
        #expect(second.status != 0, "\(second.stdout)\(second.stderr)")
        #expect(second.stderr.contains("sweep newer's stopping rules: lora.min_epochs"), "\(second.stderr)")
        #expect(try SweepProcessTests.rows(db, "SELECT name FROM sweeps").map { $0["name"] as String } == ["newer"])
        #expect(try SweepProcessTests.rows(db, "SELECT COUNT(*) AS n FROM attempts").first?["n"] == 0)
        // Submitting the sweep itself again is not refused: its rules become the ones this build read from the spec (none).
        try RetryProcessTests.coordinator(dir.url, spec: spec, endpoint: endpoint).stop()
        #expect(try SweepProcessTests.rows(db, "SELECT stopping FROM sweeps WHERE name = 'newer'").first?["stopping"] as String? == nil)
    }
}

