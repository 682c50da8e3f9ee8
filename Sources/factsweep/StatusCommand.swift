// `factsweep status`: a run's trials by state, per-condition progress, workers,
// throughput and ETA — from its database, while it runs or after.
import ArgumentParser
import Coordinator
import Store
import Core
import Foundation
import Logging

struct StatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status", abstract: "Show a run's progress (reads RUN/run.db; safe while the sweep runs).")

    @Argument(help: "The run directory.")
    var runDirectory: String

    @Flag(name: .long, help: "Machine-readable JSON.")
    var json = false

    func run() throws {
        let directory = RunDirectory(URL(fileURLWithPath: runDirectory))
        let store = try directory.open(leaseDuration: 120, logger: Logger(label: "factsweep.status"), mustExist: true)
        let status = try store.status()
        let workers = try store.workerListing()
        let decisions = try store.stoppingDecisions()
        let refused = try store.refusedTrials()
        if json {
            var conditions: [[String: Any]] = []
            for c in status.conditions {
                conditions.append(["sweep": c.sweep, "condition": c.condition, "trials": c.trials, "done": c.done, "running": c.running,
                                   "pending": c.pending, "ended": c.ended, "stopped": c.stopped, "epochs_recorded": c.epochsRecorded, "epochs_planned": c.epochsPlanned])
            }
            let object: [String: Any] = [
                "trials": Dictionary(uniqueKeysWithValues: status.trialsByStatus.map { ($0.key.rawValue, $0.value) }),
                "conditions": conditions, "connected_workers": status.connectedWorkers,
                "epochs_per_hour": status.epochsPerHour, "remaining_epochs": status.remainingEpochs,
                "eta_seconds": status.estimatedSecondsRemaining ?? NSNull(),
                "eta_is_upper_bound": status.estimateIsUpperBound,
                "stopping_decisions": decisions.mapValues { ["rule": $0.rule, "epoch": $0.epoch, "reason": $0.reason] as [String: Any] },
                "refused_trials": ["total": refused.total, "first": refused.trials.map { r -> [String: Any] in
                    ["trial": r.trial, "workers": r.workers, "reason": r.reason]
                }] as [String: Any],
                "workers": workers.map { w -> [String: Any] in
                    ["id": w.id, "host": w.host, "status": w.status.rawValue, "last_seen": w.lastSeen, "trial": w.runningTrial ?? NSNull(),
                     "slurm_job_id": w.slurmJobID ?? NSNull(), "slurm_array_task_id": w.slurmArrayTaskID ?? NSNull()]
                },
            ]
            let data = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
            print(String(decoding: data, as: UTF8.self))
        } else {
            StatusDisplay(stream: .standardOutput).show(status, final: true)
            if !decisions.isEmpty {
                print("stopped (or paused) by a stopping rule:")
                for (key, decision) in decisions.sorted(by: { $0.key < $1.key }) {
                    print("  \(key.prefix(12))  \(decision.rule) rule at epoch \(decision.epoch): \(decision.reason)")
                }
            }
            if refused.total > 0 {
                // They wait for a connected worker that has not refused them (docs/protocol.md).
                let trials = refused.total == 1 ? "1 pending trial" : "\(refused.total) pending trials"
                print("waiting for a worker whose build reads their settings (\(trials) refused by older builds):")
                for r in refused.trials {
                    print("  \(r.trial.prefix(12))  refused by \(r.workers.joined(separator: ", ")); last: \(r.reason.prefix(300))")
                }
                if refused.total > refused.trials.count { print("  and \(refused.total - refused.trials.count) more") }
            }
            if !workers.isEmpty { print(WorkerTable(workers).text, terminator: "") }
        }
    }
}

/// Renders a RunStatus: a one-line summary while running, a table at the end.
final class StatusDisplay: @unchecked Sendable {
    enum Stream { case standardOutput, standardError }
    let stream: Stream
    private var last = Date.distantPast

    init(stream: Stream) { self.stream = stream }

    func show(_ s: RunStatus, final: Bool = false) {
        if !final {
            guard Date().timeIntervalSince(last) >= 5 else { return }
            last = Date()
        }
        let counts = TrialStatus.allCases.compactMap { st in s.trialsByStatus[st].map { "\(st.rawValue) \($0)" } }.joined(separator: ", ")
        // Under stopping rules the planned epochs are a ceiling, not a forecast.
        let eta = s.estimatedSecondsRemaining.map { String(format: s.estimateIsUpperBound ? "ETA ≤ %.0f s" : "ETA %.0f s", $0) } ?? "ETA —"
        var text = "trials: \(counts) · workers \(s.connectedWorkers) · \(String(format: "%.0f", s.epochsPerHour)) epochs/h · \(eta)\n"
        if final {
            for c in s.conditions {
                let fraction = c.epochsPlanned > 0 ? Double(c.epochsRecorded) / Double(c.epochsPlanned) : 0
                let filled = Int((fraction * 20).rounded())
                let name = c.condition.count > 24 ? String(c.condition.prefix(23)) + "…" : c.condition.padding(toLength: 24, withPad: " ", startingAt: 0)
                let bar = String(repeating: "█", count: filled) + String(repeating: "·", count: 20 - filled)
                text += "  \(name) \(bar) " + String(format: "%3.0f%%  done %d/%d, running %d, pending %d", fraction * 100, c.done, c.trials, c.running, c.pending)
                    + (c.stopped > 0 ? ", stopped \(c.stopped)\n" : "\n")
            }
        }
        let data = Data(text.utf8)
        switch stream {
        case .standardOutput: FileHandle.standardOutput.write(data)
        case .standardError: FileHandle.standardError.write(data)
        }
    }
}
