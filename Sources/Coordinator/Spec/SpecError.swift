// SpecError: everything wrong with a sweep specification, each problem naming
// the spec file, the JSON path of the offending value and the condition it
// belongs to, so that one run of `factsweep plan` lists all there is to fix.
import Foundation

/// One thing wrong in a sweep specification.
public struct SpecProblem: Sendable, Equatable, CustomStringConvertible {
    /// Where in the document, as a JSON path: `conditions[2].rank`, `grid.lr[1]`, `model`; "" for the whole document.
    public var path: String
    /// The setting or member at fault (`rank`, `model`, `conditions`), when there is one.
    public var field: String?
    /// The condition the value belongs to or takes effect in; nil for `defaults`, `grid` and top-level members.
    public var condition: String?
    public var message: String

    public init(path: String, field: String?, condition: String?, message: String) {
        self.path = path; self.field = field; self.condition = condition; self.message = message
    }

    public var description: String {
        let place = path.isEmpty ? "" : "\(path): "
        let owner = condition.map { " (condition \"\($0)\")" } ?? ""
        return place + message + owner
    }
}

/// A sweep specification that cannot be planned: every problem found, in a
/// fixed order (top-level members, `defaults`, conditions in file order,
/// `grid`; within an object, settings in axis order, then unknown names).
public struct SpecError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The spec file as the user named it.
    public var file: String
    public var problems: [SpecProblem]

    public init(file: String, problems: [SpecProblem]) {
        self.file = file; self.problems = problems
    }

    /// One line per problem, each starting with the file.
    public var description: String { problems.map { "\(file): \($0)" }.joined(separator: "\n") }
}

/// "did you mean" for misspelt member names.
enum NameSuggestion {
    /// Names from other tools that are too far from ours to be found by spelling.
    static let aliases = ["learning_rate": "lr", "learningrate": "lr", "batch": "batch_size", "lora_rank": "rank", "r": "rank",
                          "lora_alpha": "alpha", "lora_dropout": "dropout", "target_modules": "targets", "num_epochs": "epochs",
                          "num_train_epochs": "epochs", "max_grad_norm": "clip", "lr_scheduler_type": "schedule"]

    /// The known name closest to `name`: a known alias, equal ignoring case,
    /// `_` and `-` (so `batchSize` finds `batch_size`), else within a small edit distance.
    static func closest(to name: String, in known: [String]) -> String? {
        if let alias = aliases[name.lowercased()], known.contains(alias) { return alias }
        let folded = fold(name)
        if let same = known.first(where: { fold($0) == folded }) { return same }
        let limit = max(1, min(3, name.count / 3))
        let scored = known.map { ($0, editDistance(folded, fold($0))) }.filter { $0.1 <= limit }
        return scored.min { $0.1 < $1.1 }?.0
    }

    /// " (did you mean X?)" or "".
    static func hint(for name: String, in known: [String]) -> String {
        closest(to: name, in: known).map { " (did you mean \"\($0)\"?)" } ?? ""
    }

    private static func fold(_ s: String) -> [Character] { Array(s.lowercased().filter { $0 != "_" && $0 != "-" }) }

    /// Edit distance counting a swap of neighbours as one edit (optimal string
    /// alignment), since `rnak` for `rank` is the commonest slip.
    private static func editDistance(_ a: [Character], _ b: [Character]) -> Int {
        guard !a.isEmpty, !b.isEmpty else { return max(a.count, b.count) }
        var d = [[Int]](repeating: [Int](repeating: 0, count: b.count + 1), count: a.count + 1)
        for i in 0...a.count { d[i][0] = i }
        for j in 0...b.count { d[0][j] = j }
        for i in 1...a.count {
            for j in 1...b.count {
                d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
                if i > 1, j > 1, a[i - 1] == b[j - 2], a[i - 2] == b[j - 1] { d[i][j] = min(d[i][j], d[i - 2][j - 2] + 1) }
            }
        }
        return d[a.count][b.count]
    }
}
