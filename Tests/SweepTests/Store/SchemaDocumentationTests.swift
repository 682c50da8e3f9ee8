// docs/schema.md stays true: every table and column it lists exists with that
// type (and none is missing), and every example query runs and finds rows.
import Foundation
import GRDB
import Testing
import TestSupport
import Trial
@testable import Store

@Suite struct SchemaDocumentationTests {
    private static func document() throws -> String {
        try String(contentsOf: TestPaths.repositoryRoot.appendingPathComponent("docs/schema.md"), encoding: .utf8)
    }

    /// `table → [column: type]` from the "### `table`" sections' rows.
    private static func documentedColumns(_ text: String) -> [String: [String: String]] {
        var tables: [String: [String: String]] = [:]
        var table: String?
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("### `") {
                table = line.dropFirst(5).split(separator: "`").first.map(String.init)
            } else if line.hasPrefix("## ") {
                table = nil
            } else if let table, line.hasPrefix("| `") {
                let cells = line.split(separator: "|").map { $0.trimmingCharacters(in: .whitespaces) }
                tables[table, default: [:]][cells[0].trimmingCharacters(in: CharacterSet(charactersIn: "`"))] = cells[1]
            }
        }
        return tables
    }

    /// The bodies of the ```sql blocks.
    private static func exampleQueries(_ text: String) -> [String] {
        text.components(separatedBy: "```sql\n").dropFirst().compactMap { $0.components(separatedBy: "```").first }
    }

    @Test func everyTableAndColumnIsDocumentedWithItsType() throws {
        let fixture = try StoreFixture()
        let actual = try fixture.store.read { db in
            var tables: [String: [String: String]] = [:]
            for table in try String.fetchAll(db, sql: """
                SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite%' AND name NOT LIKE 'grdb%'
                """) {
                for column in try db.columns(in: table) { tables[table, default: [:]][column.name] = column.type }
            }
            return tables
        }
        #expect(Self.documentedColumns(try Self.document()) == actual)
    }

    @Test func everyExampleQueryRunsAndFindsRows() throws {
        let fixture = try StoreFixture(leaseDuration: 60)
        try populate(fixture)
        let queries = Self.exampleQueries(try Self.document())
        #expect(queries.count >= 6)
        for query in queries {
            let rows = try fixture.store.read { db in try Row.fetchAll(db, sql: query) }
            #expect(!rows.isEmpty, "no rows from:\n\(query)")
        }
    }

    /// Two conditions of two seeds, three epochs each with evaluations; one
    /// trial loses its first attempt and one is still running.
    private func populate(_ fixture: StoreFixture) throws {
        let store = fixture.store
        try fixture.announce("w1", models: ["models/smollm2"])
        try fixture.addSweep(["lora-r8", "full"].flatMap { condition in
            (1...2).map { StoreSamples.trial(condition, seed: $0) }
        })
        let lost = try #require(try store.claimNextTrial(for: "w1"))
        _ = try store.recordEpoch(lost.key, attemptID: lost.attemptID, report: StoreSamples.epoch(1, questions: ["q"]))
        fixture.clock.advance(by: 61)
        _ = try store.requeueExpiredLeases()
        for _ in 0..<3 {
            let claimed = try #require(try store.claimNextTrial(for: "w1"))
            for epoch in claimed.nextEpoch...3 {
                let report = StoreSamples.epoch(epoch, loss: 1 / Float(epoch), questions: ["Where was Ada born?", "Ada's birthplace?"])
                #expect(try store.recordEpoch(claimed.key, attemptID: claimed.attemptID, report: report) == .accepted)
            }
            #expect(try store.finishTrial(claimed.key, attemptID: claimed.attemptID, result: .done) == .accepted)
        }
        let running = try #require(try store.claimNextTrial(for: "w1"))
        try store.heartbeat(workerID: "w1", renewing: [running.attemptID], phases: [(running.attemptID, .evaluating)])
    }
}
