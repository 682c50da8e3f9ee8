// StoppingSpec: reads a spec's `stopping` member — at the top level for every
// condition, or in one condition for that one — into a `StoppingRule`, each
// problem naming its field (docs/sweep-spec.md, "Stopping rules").
import Foundation
import Trial

extension SpecReader {
    /// The members each rule takes besides `rule`.
    static let stoppingMembers: [String: [String]] = [
        "target": ["accuracy", "evaluations"],
        "plateau": ["metric", "min_delta", "evaluations"],
        "median": ["metric", "grace_epochs", "min_trials"],
        "asha": ["metric", "reduction_factor", "grace_epochs", "rungs"],
    ]

    /// Reads `{"rule": …, …}` at `path`; nil when absent or refused (the problems are reported).
    mutating func readStopping(_ value: JSONValue?, path: String, condition: String?) -> StoppingRule? {
        guard let value else { return nil }
        let expected = "{\"rule\": \"target\" | \"plateau\" | \"median\" | \"asha\", …}"
        guard case .object(let members) = value else {
            report(path, "stopping", condition, "expected a stopping rule \(expected), got \(value.kindName)")
            return nil
        }
        guard let written = members["rule"] else {
            report("\(path).rule", "rule", condition, "missing: which rule (target, plateau, median or asha)")
            return nil
        }
        guard case .string(let rule) = written, let fields = Self.stoppingMembers[rule] else {
            report("\(path).rule", "rule", condition, "unknown stopping rule \(written.shortText) (expected target, plateau, median or asha)"
                   + NameSuggestion.hint(for: written.string ?? "", in: StoppingRule.names))
            return nil
        }
        for key in members.keys.sorted() where key != "rule" && !fields.contains(key) {
            report("\(path).\(key)", key, condition, "unknown member \"\(key)\" of a \(rule) rule (expected \(fields.joined(separator: ", ")))"
                   + NameSuggestion.hint(for: key, in: fields))
        }
        var reader = StoppingFields(members: members, path: path, condition: condition)
        let parsed: StoppingRule?
        switch rule {
        case "plateau":
            let metric = reader.metric()
            let delta = reader.number("min_delta", "a number ≥ 0") { $0 >= 0 }
            let evaluations = reader.count("evaluations", minimum: 1)
            if let metric, let delta, let evaluations {
                parsed = .plateau(metric: metric, minDelta: delta, evaluations: evaluations)
            } else {
                parsed = nil
            }
        case "median":
            let metric = reader.metric()
            let grace = reader.count("grace_epochs", minimum: 0)
            let minTrials = reader.count("min_trials", minimum: 1)
            if let metric, let grace, let minTrials {
                parsed = .median(metric: metric, graceEpochs: grace, minTrials: minTrials)
            } else {
                parsed = nil
            }
        case "asha":
            let metric = reader.metric()
            let eta = reader.count("reduction_factor", minimum: 2)
            let grace = reader.count("grace_epochs", minimum: 1)
            let rungs = reader.rungs()
            if let metric, let eta, let grace, let rungs {
                parsed = .asha(metric: metric, reductionFactor: eta, graceEpochs: grace, rungs: rungs.epochs)
            } else {
                parsed = nil
            }
        default:
            let accuracy = reader.number("accuracy", "a number in [0, 1]") { (0...1).contains($0) }
            let evaluations = reader.count("evaluations", minimum: 1)
            parsed = accuracy.flatMap { a in evaluations.map { .target(accuracy: a, evaluations: $0) } }
        }
        for problem in reader.problems { report(problem.path, problem.field, condition, problem.message) }
        return parsed
    }
}

/// The members of one rule object, each checked; problems collect in `problems`.
private struct StoppingFields {
    let members: [String: JSONValue]
    let path: String
    let condition: String?
    var problems: [SpecProblem] = []

    init(members: [String: JSONValue], path: String, condition: String?) {
        self.members = members; self.path = path; self.condition = condition
    }

    mutating func number(_ field: String, _ expected: String, _ valid: (Double) -> Bool) -> Double? {
        guard let value = required(field, expected) else { return nil }
        let number: Double? = switch value {
        case .integer(let i): Double(i)
        case .number(let d): d
        default: nil
        }
        guard let number, number.isFinite, valid(number) else {
            fail(field, "must be \(expected) (got \(value.shortText))")
            return nil
        }
        return number
    }

    mutating func count(_ field: String, minimum: Int) -> Int? {
        guard let value = required(field, "an integer ≥ \(minimum)") else { return nil }
        guard case .integer(let n) = value, n >= minimum else {
            fail(field, "must be an integer ≥ \(minimum) (got \(value.shortText))")
            return nil
        }
        return n
    }

    /// `rungs`: absent (derived from grace_epochs and reduction_factor), or increasing epochs ≥ 1.
    mutating func rungs() -> WrittenRungs? {
        guard let value = members["rungs"] else { return WrittenRungs(epochs: nil) }
        guard case .array(let items) = value, !items.isEmpty else {
            fail("rungs", "must be a non-empty array of increasing epochs ≥ 1 (got \(value.shortText))")
            return nil
        }
        var epochs: [Int] = []
        for item in items {
            guard case .integer(let epoch) = item, epoch >= 1, epoch > (epochs.last ?? 0) else {
                fail("rungs", "must be increasing epochs ≥ 1 (got \(item.shortText) in \(value.shortText))")
                return nil
            }
            epochs.append(epoch)
        }
        return WrittenRungs(epochs: epochs)
    }

    mutating func metric() -> StoppingMetric? {
        guard let value = required("metric", "loss or accuracy") else { return nil }
        guard case .string(let name) = value, let metric = StoppingMetric(rawValue: name) else {
            fail("metric", "must be \"loss\" or \"accuracy\" (got \(value.shortText))")
            return nil
        }
        return metric
    }

    private mutating func required(_ field: String, _ expected: String) -> JSONValue? {
        guard let value = members[field] else {
            fail(field, "missing: \(expected)")
            return nil
        }
        return value
    }

    private mutating func fail(_ field: String, _ message: String) {
        problems.append(SpecProblem(path: "\(path).\(field)", field: field, condition: condition, message: message))
    }
}

/// An asha rule's `rungs` as read: nil epochs when absent (derived from grace_epochs and reduction_factor).
private struct WrittenRungs {
    var epochs: [Int]?
}
