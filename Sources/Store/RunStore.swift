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
    /// The wait before a trial's next attempt after one that counted against its retry limit.
    public let retryBackoff: RetryBackoff
    let pool: DatabasePool
    let logger: Logger
    /// The store's notion of now (`steadyClock` unless injected, as tests do to expire leases).
    let clock: @Sendable () -> Date
    /// How long each write transaction took, commit included (coordinator-stats.json); a batch is one.
    public let writeTimes = DurationSamples()

    /// Opens the run database at `path`, creating it (and applying
    /// migrations) unless `mustExist`. Refuses, without changing it, a file
    /// that is not a FactSweep run database or was written by a newer FactSweep.
    public init(path: String, mustExist: Bool = false, leaseDuration: TimeInterval = 120,
                retryBackoff: RetryBackoff = RetryBackoff(), logger: Logger,
                clock: @escaping @Sendable () -> Date = RunStore.steadyClock()) throws {
        self.path = path
        self.leaseDuration = leaseDuration
        self.retryBackoff = retryBackoff
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

    /// Runs `body` as one write transaction: each operation of `RunTransaction` opens it (GRDB's
    /// `inSavepoint` outside a transaction is one) and commits it when it returns.
    func write<T>(_ body: (RunTransaction) throws -> T) throws -> T {
        try writeTimes.time { try pool.writeWithoutTransaction { db in try body(RunTransaction(db, store: self)) } }
    }

    /// Runs `body` in one transaction, handing it the operations to run in it: each operation stays
    /// all-or-nothing (a savepoint of its own, undone alone if it throws), and all of them commit together
    /// — one commit, and one sync to disk, for many operations. None of them is durable before `batch`
    /// returns, so answer for them (acknowledge, assign) only afterwards; if `body` throws, none is kept.
    /// Inside `body`, write through `transaction` only: GRDB's writes are not reentrant, and a write of
    /// the store itself there stops the process.
    public func batch<T>(_ body: (_ transaction: RunTransaction) throws -> T) throws -> T {
        try writeTimes.time { try pool.write { db in try body(RunTransaction(db, store: self)) } }
    }

    /// Runs `body` on a consistent snapshot, concurrently with writes.
    func read<T>(_ body: (Database) throws -> T) throws -> T {
        try pool.read(body)
    }

    /// The wall time when it is made, advanced from then on by the monotonic clock (`SuspendingClock`,
    /// which neither jumps with the wall clock nor counts a suspended machine's sleep): the store's default
    /// clock. Leases, back-offs and every other deadline the store computes then never jump — an NTP step
    /// or a resumed laptop does not expire every lease at once — while the times written stay readable
    /// wall times (off by the size of any jump until the coordinator restarts; a restart re-anchors them
    /// and grants the running attempts fresh leases).
    public static func steadyClock() -> @Sendable () -> Date {
        let wall = Date(), start = SuspendingClock.now
        return {
            let (seconds, attoseconds) = (SuspendingClock.now - start).components
            return wall.addingTimeInterval(TimeInterval(seconds) + TimeInterval(attoseconds) * 1e-18)
        }
    }

    /// Now, and the lease end of an attempt heard from now.
    var now: Date { clock() }
    func leaseEnd(from now: Date) -> Date { now.addingTimeInterval(leaseDuration) }
}

extension Database {
    /// `execute(sql:arguments:)` through the connection's statement cache: the store runs the same few
    /// statements for every worker message, and compiling one costs more than running it.
    func executeCached(sql: String, arguments: StatementArguments = StatementArguments()) throws {
        try cachedStatement(sql: sql).execute(arguments: arguments)
    }
}
