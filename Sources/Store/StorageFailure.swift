// StorageFailure: which errors of the run database are the disk's, not the
// data's — a full disk, an I/O error, a lock held elsewhere — so that the
// coordinator pauses until it can write again instead of exiting.
import Foundation
import GRDB

extension RunStore {
    /// Whether `error` says the run database cannot be written now but may be later (SQLITE_FULL,
    /// SQLITE_IOERR, SQLITE_BUSY, SQLITE_LOCKED, SQLITE_CANTOPEN, SQLITE_READONLY, SQLITE_NOMEM). The
    /// transaction it ended was rolled back whole: nothing of it is on disk.
    public static func isStorageFailure(_ error: any Error) -> Bool {
        guard let error = error as? DatabaseError else { return false }
        switch error.resultCode {
        case .SQLITE_FULL, .SQLITE_IOERR, .SQLITE_BUSY, .SQLITE_LOCKED, .SQLITE_CANTOPEN, .SQLITE_READONLY, .SQLITE_NOMEM:
            return true
        default:
            return false
        }
    }
}

extension RunTransaction {
    /// Gives every running attempt a fresh lease from now: after a pause in which nothing could be
    /// written (no progress recorded, no heartbeat renewed), no attempt is to be lost for it.
    public func renewRunningLeases() throws -> Int {
        try operation { db, now in
            try db.executeCached(sql: "UPDATE attempts SET lease_expires_at = ? WHERE outcome = 'running'", arguments: [leaseEnd(from: now)])
            return db.changesCount
        }
    }
}
