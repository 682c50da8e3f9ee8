// ReportError: why a report cannot be made, each naming the file concerned and
// what to do about it.
import Foundation

/// A report that cannot be read or written. An empty or running sweep is not
/// an error: its report says so.
public enum ReportError: Error, Equatable, CustomStringConvertible {
    /// Neither the file nor `RUN/run.db` exists.
    case missingDatabase(path: String)
    /// The file exists but is not a FactSweep run database.
    case notARunDatabase(path: String, reason: String)
    /// SQLite could not read it (permissions, a lock held elsewhere).
    case cannotRead(path: String, reason: String)
    /// The output folder or one of its files cannot be written.
    case cannotWrite(path: String, reason: String)

    public var description: String {
        switch self {
        case let .missingDatabase(path):
            "no run database at \(path); give a run directory (holding run.db) or the database file itself"
        case let .notARunDatabase(path, reason):
            "\(path) is not a FactSweep run database (\(reason)); give the run.db of a sweep"
        case let .cannotRead(path, reason):
            "cannot read the run database \(path) (\(reason)); check its permissions"
        case let .cannotWrite(path, reason):
            "cannot write the report to \(path) (\(reason)); choose another --out folder or check its permissions"
        }
    }
}
