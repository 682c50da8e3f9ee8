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
    ///
    /// `sharingPrefix` lays the rows that open every example alike once (the
    /// chat template's system turn, up to where the questions differ) and
    /// lets the later examples attend to them: as far as the tokens agree and
    /// no example after the first takes a loss there. The first, laid whole,
    /// is then the longest (the first of equals), so that the batch's shapes
    /// (and the products' primitives made for them) depend on which examples
    /// it holds, not on the order an epoch drew them in. Without a row in
    /// common, or with one example, the batch is laid as without it.
    public init(examples: [TrainingExample], scope: LossScope = .answer, sharingPrefix: Bool = false) {
        var rows = examples.map { example in
            let first = scope == .answer ? max(0, example.promptLength - 1) : 0
            return (0..<(example.tokens.count - 1)).map { t in
                (token: example.tokens[t], target: t >= first ? example.tokens[t + 1] : TokenBatch.ignore)
            }
        }
        var prefix = 0
        if sharingPrefix, let longest = rows.indices.max(by: { rows[$0].count < rows[$1].count }) {
            var reordered = rows
            reordered.insert(reordered.remove(at: longest), at: 0)
            prefix = TokenBatch.sharedRows(reordered)
            if prefix > 0 { rows = reordered }
        }
        var tokens: [Int32] = [], targets: [Int32] = []
        for (b, example) in rows.enumerated() {
            for row in example[(b == 0 ? 0 : prefix)...] {
                tokens.append(row.token)
                targets.append(row.target)
            }
        }
        self.init(lengths: rows.enumerated().map { b, example in b == 0 ? example.count : example.count - prefix },
                  tokens: tokens, targets: targets, sharedPrefix: prefix)
    }

    /// How many leading rows every sequence has alike and every sequence
    /// after the first leaves unlabelled.
    private static func sharedRows(_ rows: [[(token: Int32, target: Int32)]]) -> Int {
        guard let first = rows.first, rows.count > 1 else { return 0 }
        var prefix = 0
        while prefix < first.count, rows.dropFirst().allSatisfy({ prefix < $0.count
            && $0[prefix].token == first[prefix].token && $0[prefix].target == TokenBatch.ignore }) {
            prefix += 1
        }
        return prefix
    }
}
