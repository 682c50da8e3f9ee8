// RunStore: the coordinator's run database — opening (and refusing files that
// are not run databases), and the plumbing the operations in RunStore+*.swift share.
import Foundation
import GRDB
import Logging

/// The run database of a sweep. The coordinator is its only writer; users
/// read it with `sqlite3` while the sweep runs (WAL mode lets them).
///
/// Every public operation is one transaction, so a crash leaves either all of
/// it or none — or, inside `batch`, a savepoint of the batch's one
/// transaction. The class is thread-safe: writes are serialised by GRDB's
/// `DatabasePool`, reads run concurrently on snapshots.
public final class RunStore: Sendable {
    /// The database file.
    public let path: String
    /// How long an attempt holds its trial without news from its worker.
    public let leaseDuration: TimeInterval
    let pool: DatabasePool
    let logger: Logger
    /// The store's notion of now, injectable so that tests can expire leases.
    let clock: @Sendable () -> Date
    /// How long each write transaction took, commit included (coordinator-stats.json); a batch is one.
    public let writeTimes = DurationSamples()
    private let openBatch = OpenBatch()

    /// Opens the run database at `path`, creating it (and applying
    /// migrations) unless `mustExist`. Refuses, without changing it, a file
    /// that is not a FactSweep run database or was written by a newer FactSweep.
    public init(path: String, mustExist: Bool = false, leaseDuration: TimeInterval = 120, logger: Logger,
                clock: @escaping @Sendable () -> Date = { Date() }) throws {
        self.path = path
        self.leaseDuration = leaseDuration
        self.logger = logger
        self.clock = clock
        try Self.checkIdentity(path: path, mustExist: mustExist)
        do {
            pool = try DatabasePool(path: path, configuration: Self.configuration)
        } catch let error as DatabaseError {
            let reason = error.message ?? "\(error.resultCode)"
            throw error.resultCode == .SQLITE_NOTADB
                ? RunStoreError.notARunDatabase(path: path, reason: reason)
                : RunStoreError.cannotOpen(path: path, reason: reason)
        }
        let migrator = RunSchema.migrator
        try pool.read { db in
            guard try migrator.hasBeenSuperseded(db) else { return }
            let known = Set(migrator.migrations)
            let unknown = try migrator.appliedIdentifiers(db).subtracting(known).sorted()
            throw RunStoreError.newerSchema(path: path, unknownMigrations: unknown)
        }
        try migrator.migrate(pool)
        logger.debug("opened run database", metadata: ["path": "\(path)"])
    }

    private static var configuration: Configuration {
        var configuration = Configuration()
        configuration.foreignKeysEnabled = true
        // A user's sqlite3 session may briefly hold a lock (checkpoints);
        // wait for it rather than fail a write.
        configuration.busyMode = .timeout(10)
        configuration.prepareDatabase { db in
            // Trials are worth hours: every commit reaches the disk, not only
            // the ones before a checkpoint (commits are rare, the cost is small).
            try db.execute(sql: "PRAGMA synchronous = FULL")
        }
        return configuration
    }

    /// Refuses a missing file when it must exist, a non-SQLite file, and an
    /// SQLite file of another application — before anything (WAL mode, a
    /// migration) could write to it.
    private static func checkIdentity(path: String, mustExist: Bool) throws {
        guard FileManager.default.fileExists(atPath: path) else {
            if mustExist { throw RunStoreError.missingDatabase(path: path) }
            let folder = (path as NSString).deletingLastPathComponent
            if !FileManager.default.fileExists(atPath: folder.isEmpty ? "." : folder) { throw RunStoreError.missingFolder(path: path) }
            return
        }
        switch RunDatabaseIdentity.check(path: path) {
        case .runDatabase, .blank:
            return
        case let .other(reason):
            throw RunStoreError.notARunDatabase(path: path, reason: reason)
        case let .unreadable(reason):
            throw RunStoreError.cannotOpen(path: path, reason: reason)
        }
    }

    /// Runs `body` as one write transaction, or as a savepoint of the batch this thread has open.
    func write<T>(_ body: (Database) throws -> T) throws -> T {
        guard let db = openBatch.database else { return try writeTimes.time { try pool.write(body) } }
        try db.execute(sql: "SAVEPOINT operation")
        do {
            let result = try body(db)
            try db.execute(sql: "RELEASE SAVEPOINT operation")
            return result
        } catch {
            // Undo this operation only; the batch decides about the rest.
            try? db.execute(sql: "ROLLBACK TO SAVEPOINT operation")
            try? db.execute(sql: "RELEASE SAVEPOINT operation")
            throw error
        }
    }

    /// Runs `body` with every store write it makes on this thread joined into one transaction: each
    /// operation stays all-or-nothing (a savepoint of its own), and all of them commit together — one
    /// commit, and one sync to disk, for many operations. None of them is durable before `batch` returns,
    /// so answer for them (acknowledge, assign) only afterwards. A nested `batch` joins the open one.
    public func batch<T>(_ body: () throws -> T) throws -> T {
        if openBatch.database != nil { return try body() }
        return try writeTimes.time {
            try pool.write { db in
                openBatch.open(db)
                defer { openBatch.close() }
                return try body()
            }
        }
    }

    /// Runs `body` on a consistent snapshot, concurrently with writes.
    func read<T>(_ body: (Database) throws -> T) throws -> T {
        try pool.read(body)
    }

    /// Now, and the lease end of an attempt heard from now.
    var now: Date { clock() }
    func leaseEnd(from now: Date) -> Date { now.addingTimeInterval(leaseDuration) }
}

/// The transaction a `batch` holds open, visible to the thread that opened it only.
private final class OpenBatch: @unchecked Sendable {
    private let lock = NSLock()
    private var owner: pthread_t?
    private var db: Database?

    /// The open batch's database if this thread opened it.
    var database: Database? {
        lock.withLock {
            guard let owner, pthread_equal(owner, pthread_self()) != 0 else { return nil }
            return db
        }
    }

    func open(_ db: Database) { lock.withLock { owner = pthread_self(); self.db = db } }
    func close() { lock.withLock { owner = nil; db = nil } }
}

extension Database {
    /// `execute(sql:arguments:)` through the connection's statement cache: the store runs the same few
    /// statements for every worker message, and compiling one costs more than running it.
    func executeCached(sql: String, arguments: StatementArguments = StatementArguments()) throws {
        try cachedStatement(sql: sql).execute(arguments: arguments)
    }
}
