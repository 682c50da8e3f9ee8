// EvaluationReport and QuestionResult: the study's accuracy at one epoch —
// every question asked, the answer generated, its cosine similarity to the
// reference — as the evaluator makes it, the worker sends it and the store
// and the report read it.
import Foundation

/// One question asked at an evaluation, with the answer and its score.
public struct QuestionResult: Sendable, Codable, Equatable {
    public var question: String
    /// Whether this is a paraphrase (`eval_questions`) rather than the trained question.
    public var paraphrase: Bool
    public var reference: String
    public var answer: String
    public var similarity: Float
    /// Whether the fact's `key` occurs in the answer (case-insensitive); nil without a key.
    public var keyMatch: Bool?

    public init(question: String, paraphrase: Bool, reference: String, answer: String, similarity: Float, keyMatch: Bool?) {
        self.question = question; self.paraphrase = paraphrase; self.reference = reference
        self.answer = answer; self.similarity = similarity; self.keyMatch = keyMatch
    }
}

/// The metrics of one evaluation.
public struct EvaluationReport: Sendable, Codable, Equatable {
    /// Mean cosine similarity over all questions: the study's "accuracy".
    public var accuracy: Float
    /// Fraction of answers with similarity ≥ `threshold`.
    public var accuracyAtThreshold: Float
    public var threshold: Float
    /// Fraction of answers containing their key, over questions whose fact has one.
    public var keyMatch: Float?
    /// Perplexity of the held-out general text (forgetting), when measured.
    public var perplexity: Float?
    /// Wall time of the whole evaluation, perplexity included.
    public var seconds: Double
    /// Wall time of generating and scoring the answers (perplexity excluded).
    public var questionSeconds: Double?
    public var questions: [QuestionResult]

    public init(accuracy: Float, accuracyAtThreshold: Float, threshold: Float, keyMatch: Float?, perplexity: Float?,
                seconds: Double, questions: [QuestionResult]) {
        self.accuracy = accuracy; self.accuracyAtThreshold = accuracyAtThreshold; self.threshold = threshold
        self.keyMatch = keyMatch; self.perplexity = perplexity; self.seconds = seconds; self.questions = questions
    }
}
