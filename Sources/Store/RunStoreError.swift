// RunStoreError: every way the run database refuses a request, each with a
// message that names the file or trial and says what to do.
import Foundation

/// A request the run database cannot honour. Protocol-level surprises that a
/// worker can cause in normal operation (a stale attempt, a resent epoch) are
/// not errors but outcome values; these are the refusals the coordinator or
/// its user must act on.
public enum RunStoreError: Error, Equatable, CustomStringConvertible {
    /// The file exists but is not a FactSweep run database.
    case notARunDatabase(path: String, reason: String)
    /// The file was written by a newer FactSweep whose migrations this build lacks.
    case newerSchema(path: String, unknownMigrations: [String])
    /// The database file (or its folder) is missing.
    case missingDatabase(path: String)
    /// The folder that should hold a new database is missing.
    case missingFolder(path: String)
    /// SQLite could not open the file (permissions, a full disk, a lock held elsewhere).
    case cannotOpen(path: String, reason: String)
    /// A trial key the database does not hold.
    case unknownTrial(key: String)
    /// A worker that never announced itself.
    case unknownWorker(id: String)
    /// The trial state machine forbids this change.
    case invalidTransition(trial: String, from: TrialStatus, to: TrialStatus)
    /// A sweep's trial list names one key twice with different contents.
    case conflictingTrial(key: String, reason: String)
    /// A sweep's spec is not JSON.
    case invalidSpec(sweep: String, reason: String)
    /// Stored JSON or a column could not be read back.
    case corruptRow(table: String, key: String, reason: String)

    public var description: String {
        switch self {
        case let .notARunDatabase(path, reason):
            "\(path) is not a FactSweep run database (\(reason)); give the path of a run database or a new file name"
        case let .newerSchema(path, unknown):
            "\(path) was written by a newer FactSweep (unknown migrations: \(unknown.joined(separator: ", "))); open it with that version"
        case let .missingDatabase(path):
            "no run database at \(path); check the path, or create it by starting a sweep"
        case let .missingFolder(path):
            "cannot create the run database \(path): its folder does not exist; create the folder or choose another path"
        case let .cannotOpen(path, reason):
            "cannot open the run database \(path) (\(reason)); check its permissions and free disk space"
        case let .unknownTrial(key):
            "no trial with key \(key) in the run database"
        case let .unknownWorker(id):
            "worker \(id) has not announced itself; announce it before giving it trials"
        case let .invalidTransition(trial, from, to):
            "trial \(trial) cannot go from \(from.rawValue) to \(to.rawValue)"
        case let .conflictingTrial(key, reason):
            "trial \(key) is listed twice with different contents (\(reason)); trial keys must identify one configuration"
        case let .invalidSpec(sweep, reason):
            "the spec of sweep \(sweep) is not valid JSON (\(reason)); store the spec as the sweep parsed it"
        case let .corruptRow(table, key, reason):
            "row \(key) of table \(table) cannot be read (\(reason)); the run database was edited by hand or is damaged"
        }
    }
}
