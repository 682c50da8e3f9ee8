// FactDataset: question/answer facts from JSON Lines, validated line by line.
import Foundation

/// One fact to learn: a question, its reference answer, optional paraphrased
/// questions asked at evaluation, and an optional key span a correct answer contains.
public struct Fact: Sendable, Equatable, Codable {
    public var question: String
    public var answer: String
    public var evalQuestions: [String]?
    public var key: String?

    enum CodingKeys: String, CodingKey, CaseIterable {
        case question, answer, evalQuestions = "eval_questions", key
    }

    public init(question: String, answer: String, evalQuestions: [String]? = nil, key: String? = nil) {
        self.question = question; self.answer = answer; self.evalQuestions = evalQuestions; self.key = key
    }
}

/// A dataset file that cannot be used, naming the file and line.
public struct DatasetError: Error, CustomStringConvertible, Equatable {
    public let file: String
    public let line: Int?
    public let reason: String
    public var description: String { line.map { "\(file):\($0): \(reason)" } ?? "\(file): \(reason)" }
}

/// Facts read from a JSON Lines file: one object per line with exactly the
/// fields of `Fact`; blank lines are allowed, anything else is an error.
public struct FactDataset: Sendable, Equatable {
    public let facts: [Fact]
    public let origin: String

    public init(facts: [Fact], origin: String = "<memory>") {
        self.facts = facts
        self.origin = origin
    }

    public static func load(_ url: URL) throws -> FactDataset {
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw DatasetError(file: url.path, line: nil, reason: "cannot read: \(error.localizedDescription)")
        }
        return try parse(data, origin: url.path)
    }

    public static func parse(_ data: Data, origin: String) throws -> FactDataset {
        var facts: [Fact] = []
        let known = Set(Fact.CodingKeys.allCases.map(\.rawValue))
        var lineNumber = 0
        for lineBytes in data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
            lineNumber += 1
            func fail(_ reason: String) -> DatasetError { DatasetError(file: origin, line: lineNumber, reason: reason) }
            guard let line = String(data: Data(lineBytes), encoding: .utf8) else { throw fail("invalid UTF-8") }
            if line.allSatisfy(\.isWhitespace) { continue }
            let object: Any
            do { object = try JSONSerialization.jsonObject(with: Data(line.utf8)) } catch {
                throw fail("invalid JSON")
            }
            guard let fields = object as? [String: Any] else { throw fail("expected a JSON object") }
            if let unknown = fields.keys.sorted().first(where: { !known.contains($0) }) {
                throw fail("unknown field \"\(unknown)\" (expected question, answer, eval_questions, key)")
            }
            func text(_ name: String, required: Bool) throws -> String? {
                guard let value = fields[name] else {
                    if required { throw fail("missing field \"\(name)\"") }
                    return nil
                }
                guard let s = value as? String else { throw fail("field \"\(name)\" must be a string") }
                if s.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty { throw fail("field \"\(name)\" is empty") }
                return s
            }
            var fact = Fact(question: try text("question", required: true) ?? "", answer: try text("answer", required: true) ?? "")
            fact.key = try text("key", required: false)
            if let paraphrases = fields["eval_questions"] {
                guard let list = paraphrases as? [String], list.allSatisfy({ !$0.isEmpty }) else {
                    throw fail("field \"eval_questions\" must be a list of non-empty strings")
                }
                fact.evalQuestions = list
            }
            facts.append(fact)
        }
        if facts.isEmpty { throw DatasetError(file: origin, line: nil, reason: "no facts (the file is empty)") }
        return FactDataset(facts: facts, origin: origin)
    }
}
