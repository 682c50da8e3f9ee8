// WorkerTable: `factsweep status`'s list of workers — with the Slurm job of
// each (as squeue's JOBID column shows it), so that workers match squeue.
import Coordinator
import Foundation
import Store

struct WorkerTable {
    let workers: [WorkerListing]
    init(_ workers: [WorkerListing]) { self.workers = workers }

    var text: String {
        let rows = [["worker", "status", "slurm job", "host", "trial", "phase", "last seen"]] + workers.map {
            [$0.id, $0.status.rawValue, $0.squeueID ?? "—", $0.host, $0.runningTrial ?? "—",
             $0.runningTrial == nil ? "—" : $0.phase?.rawValue ?? "—", $0.lastSeen]
        }
        let widths = (0..<rows[0].count).map { column in rows.map { $0[column].count }.max() ?? 0 }
        return rows.map { row in
            "  " + zip(row, widths).map { $0.padding(toLength: $1, withPad: " ", startingAt: 0) }.joined(separator: "  ")
                .trimmingCharacters(in: .whitespaces) + "\n"
        }.joined()
    }
}
