// TrainingExamples: facts turned into token sequences in the model's chat
// format, and sequences laid end to end in batches.
import Trial

/// One tokenised fact: the question as the user turn of the chat template, the
/// answer plus end-of-turn token as the assistant's reply.
public struct TrainingExample: Sendable, Equatable {
    /// The whole sequence, prompt then answer (the final token is only a target).
    public let tokens: [Int32]
    /// How many leading tokens are prompt (not trained on unless requested).
    public let promptLength: Int
}

extension TrainingExample {
    /// Builds the example of `fact` in `model`'s chat format. Special tokens
    /// typed in the fact itself stay plain text.
    public init(fact: Fact, model: LanguageModel) throws {
        let template = model.template
        let prompt = template.render(messages: [.user(fact.question)], addGenerationPrompt: true)
        let promptTokens = try model.encode(prompt, parseSpecial: true)
        let answerTokens = try model.encode(fact.answer, parseSpecial: false) + [template.endOfTurnTokenId]
        self.init(tokens: promptTokens + answerTokens, promptLength: promptTokens.count)
    }
}

extension TokenBatch {
    /// Lays examples end to end, without padding. Position t is trained to
    /// predict token t+1; the last token of each example is only a target, so
    /// an example of n tokens takes n − 1 rows.
    public init(examples: [TrainingExample], scope: LossScope = .answer) {
        var tokens: [Int32] = [], targets: [Int32] = []
        for example in examples {
            let first = scope == .answer ? max(0, example.promptLength - 1) : 0
            for t in 0..<(example.tokens.count - 1) {
                tokens.append(example.tokens[t])
                targets.append(t >= first ? example.tokens[t + 1] : TokenBatch.ignore)
            }
        }
        self.init(lengths: examples.map { $0.tokens.count - 1 }, tokens: tokens, targets: targets)
    }
}
