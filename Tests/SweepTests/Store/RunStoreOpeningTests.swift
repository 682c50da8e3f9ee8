// Opening a run database: migrations on a fresh file and on re-open, and the
// refusal of files that are not run databases.
import Foundation
import GRDB
import Testing
import TestSupport
@testable import Store

@Suite struct RunStoreOpeningTests {
    @Test func freshFileGetsTheSchemaInWALModeWithForeignKeys() throws {
        let fixture = try StoreFixture()
        let (tables, journal, foreignKeys, applicationID) = try fixture.store.read { db in
            (try String.fetchAll(db, sql: "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'grdb%' ORDER BY name"),
             try String.fetchOne(db, sql: "PRAGMA journal_mode"),
             try Bool.fetchOne(db, sql: "PRAGMA foreign_keys"),
             try Int32.fetchOne(db, sql: "PRAGMA application_id"))
        }
        #expect(tables == ["attempts", "epoch_metrics", "events", "question_outputs", "stopping_decisions", "sweeps", "trials", "workers"])
        #expect(journal == "wal")
        #expect(foreignKeys == true)
        #expect(applicationID == RunSchema.applicationID)
    }

    @Test func reopeningKeepsDataAndAppliesNoMigrationTwice() throws {
        let fixture = try StoreFixture()
        try fixture.addSweep([StoreSamples.trial("lora-r8", seed: 1)])
        try fixture.reopen()
        #expect(try fixture.store.trial("lora-r8-smollm2-s1")?.status == .pending)
        let applied = try fixture.store.read { db in try String.fetchAll(db, sql: "SELECT identifier FROM grdb_migrations") }
        #expect(applied == RunSchema.migrator.migrations)
    }

    @Test func aMissingFileOrFolderIsRefused() throws {
        let folder = try TemporaryDirectory()
        let path = folder.file("absent.db").path
        #expect(throws: RunStoreError.missingDatabase(path: path)) {
            try RunStore(path: path, mustExist: true, logger: CapturedLogs().logger())
        }
        #expect(!FileManager.default.fileExists(atPath: path))
        let inMissingFolder = folder.file("no-such-folder/run.db").path
        #expect(throws: RunStoreError.missingFolder(path: inMissingFolder)) {
            try RunStore(path: inMissingFolder, logger: CapturedLogs().logger())
        }
    }

    @Test func aTextFileIsRefusedByNameAndLeftUnchanged() throws {
        let folder = try TemporaryDirectory()
        let path = folder.file("notes.txt").path
        let contents = Data("not a database, just notes\n".utf8)
        try contents.write(to: URL(fileURLWithPath: path))
        let error = #expect(throws: RunStoreError.self) { try RunStore(path: path, logger: CapturedLogs().logger()) }
        #expect(error == .notARunDatabase(path: path, reason: "not an SQLite file"))
        #expect(error?.description.contains(path) == true)
        #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == contents)
    }

    @Test func anotherApplicationsSQLiteFileIsRefusedAndLeftInItsJournalMode() throws {
        let folder = try TemporaryDirectory()
        let path = folder.file("other.sqlite").path
        try DatabaseQueue(path: path).write { db in try db.execute(sql: "CREATE TABLE notes (text TEXT)") }
        let error = #expect(throws: RunStoreError.self) { try RunStore(path: path, logger: CapturedLogs().logger()) }
        #expect(error == .notARunDatabase(path: path, reason: "an SQLite database with other tables (application_id 0)"))
        let journal = try DatabaseQueue(path: path).read { db in try String.fetchOne(db, sql: "PRAGMA journal_mode") }
        #expect(journal == "delete")
    }

    @Test func aDatabaseFromANewerFactSweepIsRefused() throws {
        let fixture = try StoreFixture()
        try fixture.store.write { transaction in
            try transaction.db.execute(sql: "INSERT INTO grdb_migrations (identifier) VALUES ('v9-from-the-future')")
        }
        let error = #expect(throws: RunStoreError.self) { try fixture.reopen() }
        #expect(error == .newerSchema(path: fixture.path, unknownMigrations: ["v9-from-the-future"]))
    }
}
