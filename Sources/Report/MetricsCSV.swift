// MetricsCSV: every epoch row of a run with its trial's settings, as CSV
// (RFC 4180) for spreadsheets and plotting elsewhere.
import Foundation

public enum MetricsCSV {
    public static let columns = ["trial_key", "condition", "method", "rank", "alpha", "lr", "seed", "epoch", "loss",
                                 "train_seconds", "epoch_seconds", "accuracy", "accuracy_at_threshold", "key_match",
                                 "perplexity", "batch_size", "precision", "adam_moments", "update_in_backward", "line"]

    /// One header line and one line per epoch row; missing values are empty.
    /// `lines`: each trial's line in the report, by key (`ConditionAggregate.lineNames`).
    public static func csv(_ snapshot: RunSnapshot, lines: [String: String]) -> String {
        let trials = Dictionary(snapshot.trials.map { ($0.key, $0) }, uniquingKeysWith: { first, _ in first })
        var out = columns.joined(separator: ",") + "\r\n"
        for row in snapshot.epochs {
            let trial = trials[row.trialKey]
            let cells: [String] = [
                row.trialKey, trial?.condition ?? "", trial?.method ?? "", trial?.rank.map(String.init) ?? "",
                number(trial?.alpha), number(trial?.learningRate), trial.map { String($0.seed) } ?? "", String(row.epoch),
                number(row.loss), number(row.trainSeconds), number(row.epochSeconds), number(row.accuracy),
                number(row.accuracyAtThreshold), number(row.keyMatch), number(row.perplexity),
                trial?.settings?.values["training.batchSize"] ?? "", trial?.settings?.productPrecision.rawValue ?? "",
                trial?.settings.map { $0.values["training.optimizer.moments"] ?? "f32" } ?? "",
                trial?.settings.map { $0.values["training.optimizer.updateInBackward"] ?? "false" } ?? "",
                lines[row.trialKey] ?? "",
            ]
            out += cells.map(quote).joined(separator: ",") + "\r\n"
        }
        return out
    }

    /// Full precision: the CSV is data, not presentation.
    static func number(_ value: Double?) -> String {
        guard let value else { return "" }
        return "\(value)"
    }

    static func quote(_ cell: String) -> String {
        guard cell.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) else { return cell }
        return "\"" + cell.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }
}
