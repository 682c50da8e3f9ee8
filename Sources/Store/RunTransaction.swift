// RunTransaction: the store's write operations, run on a GRDB `Database` whose
// transaction the caller holds — one operation alone (RunStore's methods) or
// many in one commit (`RunStore.batch`).
import Foundation
import GRDB
import Logging

/// The write operations of a run database inside an open write of `RunStore`.
///
/// Each operation is a savepoint of GRDB's (`Database.inSavepoint`): all of it or none of it is kept,
/// and one that throws is undone alone while the rest of a batch goes on. Outside a transaction the
/// savepoint is the transaction itself. Obtain one from `RunStore.batch`; it is valid only inside it.
public struct RunTransaction {
    /// The writer connection, inside the caller's write.
    let db: Database
    let store: RunStore

    init(_ db: Database, store: RunStore) {
        self.db = db
        self.store = store
    }

    var logger: Logger { store.logger }

    /// Runs one operation as a savepoint, with the store's now read once for all it writes.
    func operation<T>(_ body: (_ db: Database, _ now: Date) throws -> T) throws -> T {
        let now = store.now
        var result: T?
        try db.inSavepoint {
            result = try body(db, now)
            return .commit
        }
        // inSavepoint returns only after `body` returned and its savepoint was released.
        guard let result else { throw DatabaseError(resultCode: .SQLITE_MISUSE, message: "a savepoint body did not run") }
        return result
    }

    /// The lease end of an attempt heard from at `now`.
    func leaseEnd(from now: Date) -> Date { store.leaseEnd(from: now) }
}
