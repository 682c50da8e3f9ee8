// TrainingExamples: facts turned into token sequences in the model's chat
// format, and sequences packed into right-padded batches.
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
    /// Packs examples into one right-padded batch. Position t is trained to
    /// predict token t+1; the last token of each example is only a target, so
    /// each row holds `tokens.count − 1` inputs.
    public init(examples: [TrainingExample], padToken: Int32, scope: LossScope = .answer) {
        let seqLen = examples.map { $0.tokens.count - 1 }.max() ?? 0
        var tokens = [Int32](repeating: padToken, count: examples.count * seqLen)
        var targets = [Int32](repeating: TokenBatch.ignore, count: examples.count * seqLen)
        for (b, example) in examples.enumerated() {
            let first = scope == .answer ? max(0, example.promptLength - 1) : 0
            for t in 0..<(example.tokens.count - 1) {
                tokens[b * seqLen + t] = example.tokens[t]
                if t >= first { targets[b * seqLen + t] = example.tokens[t + 1] }
            }
        }
        self.init(batchSize: examples.count, seqLen: seqLen, tokens: tokens, targets: targets)
    }
}
