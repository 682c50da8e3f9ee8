// `factsweep plan`: check a sweep spec and list the trials it expands to,
// without running anything.
import ArgumentParser
import Coordinator
import Core
import Foundation
import Trial

struct PlanCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plan",
        abstract: "Check a sweep spec and print the trials it expands to (see docs/sweep-spec.md).",
        discussion: "Exits with status 2 after listing every problem when the spec is invalid.")

    @Argument(help: "The sweep spec, a JSON file; relative paths in it are relative to its directory.")
    var spec: String

    @Flag(name: .long, help: "Print the plan as JSON: name, count and every trial's condition, key and full configuration.")
    var json = false

    func run() throws {
        let plan: SweepPlan
        do throws(SpecError) { plan = try SweepPlan.load(URL(fileURLWithPath: spec)) } catch {
            var error = error
            error.file = spec  // as the user typed it
            FileHandle.standardError.write(Data((error.description + "\n\(error.problems.count) problem\(error.problems.count == 1 ? "" : "s")\n").utf8))
            throw ExitCode(2)
        }
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            let document = PlanDocument(name: plan.name, count: plan.trials.count, trials: plan.trials,
                                        stopping: plan.stopping.isEmpty ? nil : plan.stopping)
            print(String(decoding: try encoder.encode(document), as: UTF8.self))
        } else {
            print(Self.table(plan.trials))
            let conditions = Set(plan.trials.map(\.condition)).count
            print("\(plan.trials.count) trial\(plan.trials.count == 1 ? "" : "s") in \(conditions) condition\(conditions == 1 ? "" : "s") of sweep \"\(plan.name)\"")
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            for (condition, rule) in plan.stopping.sorted(by: { $0.key < $1.key }) {
                print("stopping rule of \(condition): \(String(decoding: try encoder.encode(rule), as: UTF8.self))")
            }
        }
    }

    /// Settings shown only when they differ between trials (a grid or sampled axis over them).
    static let varyingColumns: [(name: String, value: @Sendable (TrialConfig) -> String)] = [
        ("dropout", { "\($0.training.method.dropout)" }), ("warmup", { "\($0.training.warmupSteps)" }),
        ("schedule", { $0.training.decay.rawValue }), ("weight_decay", { "\($0.training.optimizer.weightDecay)" }),
        ("clip", { $0.training.optimizer.maxGradNorm.map { "\($0)" } ?? "0" }), ("threshold", { "\($0.threshold)" }),
        ("precision", { $0.training.productPrecision.rawValue }), ("moments", { $0.training.optimizer.momentPrecision.rawValue }),
        ("update_in_backward", { "\($0.training.optimizer.updatesInBackward)" }),
        ("eval", { config in
            let every = config.evalEvery > 0 ? "every \(config.evalEvery)" : "never"
            return (config.evalEpochs.map { $0.map(String.init).joined(separator: ",") + "+" } ?? "") + every
        }),
    ]

    /// One row a trial, columns padded to their widest cell.
    static func table(_ trials: [PlannedTrial]) -> String {
        let extra = varyingColumns.filter { column in Set(trials.map { column.value($0.config) }).count > 1 }
        let header = ["condition", "method", "rank", "alpha", "lr", "epochs", "seed", "batch"] + extra.map(\.name) + ["key"]
        let rows = trials.map { trial -> [String] in
            let t = trial.config.training, m = t.method
            let adapterShape = m.kind == .lora || m.kind == .qlora
            return [trial.condition, m.kind.rawValue, adapterShape ? "\(m.rank)" : "-", adapterShape ? "\(m.alpha)" : "-",
                    "\(t.learningRate)", "\(t.epochs)", "\(t.seed)", t.batchSize == 0 ? "all" : "\(t.batchSize)"]
                + extra.map { $0.value(trial.config) } + [String(trial.key.prefix(12))]
        }
        let widths = header.indices.map { column in ([header] + rows).map { $0[column].count }.max() ?? 0 }
        return ([header] + rows).map { cells in
            zip(cells, widths).map { $0.padding(toLength: $1, withPad: " ", startingAt: 0) }.joined(separator: "  ")
                .trimmingCharacters(in: .whitespaces)
        }.joined(separator: "\n")
    }
}

/// The `--json` output.
private struct PlanDocument: Encodable {
    let name: String
    let count: Int
    let trials: [PlannedTrial]
    /// The stopping rule of each condition that has one; absent when none has.
    let stopping: [String: StoppingRule]?
}
