// Reports of runs that have nothing to show yet, of databases that predate
// stored summaries, and refusals of files that are not run databases.
import Foundation
import GRDB
import Logging
import Testing
import TestSupport
@testable import Report
@testable import Store

@Suite struct ReportEdgeCaseTests {
    let logger = Logger(label: "test.report") { _ in SwiftLogNoOpLogHandler() }

    /// A learning-rate axis: each rate of a condition is its own line (seeds
    /// combined), named after the rate; conditions without an axis keep their name.
    @Test func gridAxesOfAConditionAreSeparateLines() throws {
        var snapshot = SyntheticStudy.snapshot(SyntheticStudy.conditions(recording: 4), plannedEpochs: 4)
        let fullTrials = snapshot.trials.indices.filter { snapshot.trials[$0].condition == "full" }
        #expect(fullTrials.count == 2)
        snapshot.trials[fullTrials[1]].learningRate = 1e-5
        let aggregates = ConditionAggregate.all(in: snapshot)
        #expect(aggregates.map(\.condition).prefix(3) == ["full, lr 0.0002", "full, lr 0.00001", "lora-r4"])
        #expect(aggregates.prefix(2).allSatisfy { $0.trials.count == 1 })
        #expect(aggregates[2].trials.count == 2)
        #expect(aggregates.count == SyntheticStudy.conditions.count + 1)
    }

    @Test func anEmptyRunGivesAReportThatSaysSo() throws {
        let folder = try TemporaryDirectory()
        _ = try RunStore(path: folder.file("run.db").path, logger: logger)
        let report = try RunReport.read(folder.url.path, logger: logger)
        let files = try report.write(to: folder.file("report"), logger: logger)
        #expect(files.figures.isEmpty)
        let html = try String(contentsOf: files.html, encoding: .utf8)
        #expect(html.contains("This run has no trials yet"))
        #expect(try String(contentsOf: files.csv, encoding: .utf8) == MetricsCSV.columns.joined(separator: ",") + "\r\n")
        #expect(report.claims.allSatisfy { $0.verdict == .notMeasured })
    }

    @Test func trialsWithoutEpochsGiveNoFiguresYet() throws {
        let folder = try TemporaryDirectory()
        let store = try RunStore(path: folder.file("run.db").path, logger: logger)
        _ = try store.addSweep(name: "study", spec: Data("{}".utf8),
                               trials: SyntheticStudy.conditions.map { SyntheticStudy.trial($0, seed: 1) })
        let report = try RunReport.read(folder.file("run.db").path, logger: logger)
        let markdown = try String(contentsOf: try report.write(to: folder.file("out"), logger: logger).markdown, encoding: .utf8)
        #expect(markdown.contains("No epoch has been recorded yet"))
        #expect(!markdown.contains(".svg"))
    }

    @Test func aDatabaseWithoutSummariesShowsWhatItHas() throws {
        let folder = try TemporaryDirectory()
        let path = try SyntheticStudy.write(in: folder, conditions: Array(SyntheticStudy.conditions.prefix(2)))
        // Back to the first schema, as a database written before summaries were stored.
        try DatabaseQueue(path: path).write { db in
            try db.execute(sql: "ALTER TABLE trials DROP COLUMN summary")
            try db.execute(sql: "DELETE FROM grdb_migrations WHERE identifier = 'v2-trial-summary'")
        }
        let report = try RunReport.read(path, logger: logger)
        #expect(!report.snapshot.storesSummaries)
        let markdown = try String(contentsOf: try report.write(to: folder.file("out"), logger: logger).markdown, encoding: .utf8)
        #expect(markdown.contains("| full | not stored | 18.30 |"))
        #expect(markdown.contains("Not stored: this run database predates trial summaries"))
        #expect(markdown.contains("| full, lora-r4 | smollm2 | — | — | — |"), "the model path from the configuration only")
    }

    @Test func refusesWhatIsNotARunDatabaseNamingThePath() throws {
        let folder = try TemporaryDirectory()
        let missing = folder.file("nowhere/run.db").path
        #expect(throws: ReportError.missingDatabase(path: missing)) { try RunReport.read(missing, logger: logger) }
        // A run directory without run.db is reported as that file missing.
        #expect(throws: ReportError.missingDatabase(path: folder.file("run.db").path)) {
            try RunReport.read(folder.url.path, logger: logger)
        }

        let text = folder.file("notes.txt")
        try Data("not a database".utf8).write(to: text)
        let empty = folder.file("empty.db")
        try Data().write(to: empty)
        let other = folder.file("other.db")
        try DatabaseQueue(path: other.path).write { try $0.execute(sql: "CREATE TABLE t (x)") }
        for (url, reason) in [(text, "not an SQLite file"), (empty, "an empty file"), (other, "application_id 0")] {
            do {
                _ = try RunReport.read(url.path, logger: logger)
                Issue.record("read \(url.lastPathComponent)")
            } catch let error as ReportError {
                guard case let .notARunDatabase(path, why) = error else { Issue.record("\(error)"); continue }
                #expect(path == url.path && why.contains(reason))
                #expect(error.description.hasPrefix(url.path + " is not a FactSweep run database"))
            }
        }
    }

    @Test func readsWhileTheCoordinatorHoldsTheDatabaseOpen() throws {
        let folder = try TemporaryDirectory()
        try SyntheticStudy.write(in: folder, conditions: Array(SyntheticStudy.conditions.prefix(1)))
        let store = try RunStore(path: folder.file("run.db").path, logger: logger)
        let before = try store.status()
        let report = try RunReport.read(folder.url.path, logger: logger)
        #expect(report.snapshot.trials.count == 2 && report.snapshot.epochs.count == 60)
        var after = try store.status()
        after.window = before.window  // wall time moved on between the two reads
        #expect(after == before)
    }
}
