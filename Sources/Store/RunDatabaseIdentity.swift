// RunDatabaseIdentity: the one check of whether a file is a FactSweep run
// database (SQLite header, `PRAGMA application_id`, FactSweep's migrations),
// made read-only before anything could write to the file. The store and the
// report reader both ask it and word the answer for their users.
import Foundation
import GRDB

/// What a file is, as far as run databases go.
public enum RunDatabaseIdentity: Sendable, Equatable {
    /// A run database: FactSweep's application id. `tablesCreated`: its first migration ran.
    case runDatabase(tablesCreated: Bool)
    /// Nothing yet: an empty file, or an SQLite database without tables or application id — the store
    /// may make a run database of it; there is nothing to read in it.
    case blank(reason: String)
    /// Something else: not SQLite, or another application's database. `reason` says which.
    case other(reason: String)
    /// The file cannot be opened for reading (permissions).
    case unreadable(reason: String)

    /// The SQLite header every database file starts with.
    private static let sqliteHeader = Data("SQLite format 3\u{0}".utf8)

    /// Looks at the existing file `path` without changing it: its header, then read-only, its
    /// application id and tables (a file that cannot be opened must not be put in WAL mode or migrated).
    public static func check(path: String) -> RunDatabaseIdentity {
        guard let handle = FileHandle(forReadingAtPath: path) else {
            return .unreadable(reason: "it cannot be opened for reading")
        }
        let header = (try? handle.read(upToCount: sqliteHeader.count)) ?? nil
        try? handle.close()
        guard let header, !header.isEmpty else { return .blank(reason: "an empty file") }
        guard header == sqliteHeader else { return .other(reason: "not an SQLite file") }
        var readOnly = Configuration()
        readOnly.readonly = true
        do {
            return try DatabaseQueue(path: path, configuration: readOnly).read { db in
                let applicationID = try Int32.fetchOne(db, sql: "PRAGMA application_id") ?? 0
                let hasTables = try Bool.fetchOne(db, sql: "SELECT EXISTS (SELECT 1 FROM sqlite_master)") ?? false
                switch (applicationID, hasTables) {
                case (RunSchema.applicationID, _):
                    let created = try db.tableExists("grdb_migrations") && (try Bool.fetchOne(db, sql: """
                        SELECT EXISTS (SELECT 1 FROM grdb_migrations WHERE identifier = 'v1-run-database')
                        """) ?? false)
                    return .runDatabase(tablesCreated: created)
                case (0, false):
                    return .blank(reason: "an SQLite database without tables")
                case (0, true):
                    return .other(reason: "an SQLite database with other tables (application_id 0)")
                default:
                    return .other(reason: "an SQLite database of another application (application_id \(applicationID))")
                }
            }
        } catch let error as DatabaseError {
            return .other(reason: error.message ?? "\(error.resultCode)")
        } catch {
            return .other(reason: "\(error)")
        }
    }
}
