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
        var all = ""
        produce(snapshot, lines: lines, flushingAt: .max) { all += $0 }
        return all
    }

    /// Writes `csv(snapshot, lines:)` to `url` a megabyte at a time, into a file beside it renamed over it
    /// when complete: at 100,000 trials of 10 epochs the text is 160 MB, and held whole with its bytes
    /// for writing it took a third of the report's memory.
    /// A partial file left by a report that was killed is removed by the next one once `stalePartialAge`
    /// has passed since it was last written (a live one is written every megabyte).
    public static func write(_ snapshot: RunSnapshot, lines: [String: String], to url: URL) throws {
        let folder = url.deletingLastPathComponent(), prefix = ".\(url.lastPathComponent)."
        removeStalePartials(in: folder, prefix: prefix)
        // A name of its own: two reports written into one folder at once each rename their own file.
        let partial = folder.appendingPathComponent(prefix + UUID().uuidString + ".partial")
        try Data().write(to: partial)  // its error names the cause (no space, no permission, a read-only disk)
        do {
            let handle = try FileHandle(forWritingTo: partial)
            defer { try? handle.close() }
            try produce(snapshot, lines: lines, flushingAt: 1 << 20) { try handle.write(contentsOf: Data($0.utf8)) }
            try handle.synchronize()
            guard rename(partial.path, url.path) == 0 else {
                throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO)
            }
        } catch {
            try? FileManager.default.removeItem(at: partial)
            throw error
        }
    }

    /// How long a partial file goes unwritten before it counts as left by a killed report.
    static let stalePartialAge: TimeInterval = 600

    private static func removeStalePartials(in folder: URL, prefix: String, now: Date = Date()) {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: folder.path) else { return }
        for name in names where name.hasPrefix(prefix) && name.hasSuffix(".partial") {
            let path = folder.appendingPathComponent(name).path
            guard let written = (try? FileManager.default.attributesOfItem(atPath: path))?[.modificationDate] as? Date,
                  now.timeIntervalSince(written) > stalePartialAge else { continue }
            try? FileManager.default.removeItem(atPath: path)
        }
    }

    /// The CSV's text in pieces of about `flushingAt` bytes, in order.
    private static func produce(_ snapshot: RunSnapshot, lines: [String: String], flushingAt limit: Int,
                                _ flush: (String) throws -> Void) rethrows {
        // A trial's cells are the same on each of its rows: they are made and quoted once per trial (at
        // 100,000 trials of 10 epochs, making them per row was half of `factsweep report`).
        var trialCells: [String: (head: String, tail: String)] = [:]
        for trial in snapshot.trials where trialCells[trial.key] == nil {
            trialCells[trial.key] = cells(of: trial, line: lines[trial.key] ?? "")
        }
        var out = columns.joined(separator: ",") + "\r\n"
        for row in snapshot.epochs {
            let trial = trialCells[row.trialKey] ?? (quote(row.trialKey) + ",,,,,,", ",,,," + quote(lines[row.trialKey] ?? ""))
            // The row's own cells are numbers, which hold nothing to quote.
            let measured = [String(row.epoch), number(row.loss), number(row.trainSeconds), number(row.epochSeconds),
                            number(row.accuracy), number(row.accuracyAtThreshold), number(row.keyMatch), number(row.perplexity)]
            out += trial.head
            out += ","
            out += measured.joined(separator: ",")
            out += ","
            out += trial.tail
            out += "\r\n"
            if out.utf8.count >= limit {
                try flush(out)
                out = ""
            }
        }
        try flush(out)
    }

    /// A trial's cells before its rows' own (`trial_key` to `seed`) and after them (`batch_size` to `line`), quoted.
    private static func cells(of trial: ReportTrial, line: String) -> (head: String, tail: String) {
        let head = [trial.key, trial.condition, trial.method, trial.rank.map(String.init) ?? "", number(trial.alpha),
                    number(trial.learningRate), String(trial.seed)]
        let tail = [trial.settings?.values["training.batchSize"] ?? "", trial.settings?.productPrecision.rawValue ?? "",
                    trial.settings.map { $0.values["training.optimizer.moments"] ?? "f32" } ?? "",
                    trial.settings.map { $0.values["training.optimizer.updateInBackward"] ?? "false" } ?? "", line]
        return (head.map(quote).joined(separator: ","), tail.map(quote).joined(separator: ","))
    }

    /// Full precision: the CSV is data, not presentation.
    static func number(_ value: Double?) -> String {
        guard let value else { return "" }
        return "\(value)"
    }

    /// The cell as RFC 4180 writes it: in quotes, its quotes doubled, when it holds a comma, a quote or a
    /// line break. Looked for byte by byte: a quote or a line feed followed by a combining mark, and "\r\n",
    /// are one `Character` that equals none of them, and went out bare.
    static func quote(_ cell: String) -> String {
        let quote: UInt8 = 0x22
        guard cell.utf8.contains(where: { $0 == 0x2C || $0 == quote || $0 == 0x0A || $0 == 0x0D }) else { return cell }
        var bytes: [UInt8] = [quote]
        bytes.reserveCapacity(cell.utf8.count + 4)
        for byte in cell.utf8 {
            bytes.append(byte)
            if byte == quote { bytes.append(quote) }
        }
        bytes.append(quote)
        return String(decoding: bytes, as: UTF8.self)
    }
}
