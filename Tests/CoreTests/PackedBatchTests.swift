// Training batches lay their examples end to end, without padding: the
// layout, and the loss and gradients against the same examples right-padded.
import Testing
@testable import Core
import TestSupport
import Trial

@Suite struct PackedBatchTests {
    /// Examples of 6, 9 and 3 tokens with prompts of 3, 4 and 1 tokens.
    static func examples(vocab: Int, seed: UInt64 = 3) -> [TrainingExample] {
        var rng = SeededGenerator(seed: seed)
        return [(6, 3), (9, 4), (3, 1)].map { count, prompt in
            TrainingExample(tokens: (0..<count).map { _ in Int32(1 + rng.next() % UInt64(vocab - 1)) }, promptLength: prompt)
        }
    }

    /// The same examples right-padded to the longest, pad rows unlabelled.
    static func padded(_ examples: [TrainingExample]) -> TokenBatch {
        let T = examples.map { $0.tokens.count - 1 }.max() ?? 0
        var tokens = [Int32](repeating: 0, count: examples.count * T), targets = [Int32](repeating: TokenBatch.ignore, count: tokens.count)
        for (b, e) in examples.enumerated() {
            for t in 0..<(e.tokens.count - 1) {
                tokens[b * T + t] = e.tokens[t]
                if t >= e.promptLength - 1 { targets[b * T + t] = e.tokens[t + 1] }
            }
        }
        return TokenBatch(batchSize: examples.count, seqLen: T, tokens: tokens, targets: targets)
    }

    @Test func examplesAreLaidEndToEnd() {
        let examples = Self.examples(vocab: 37)
        let batch = TokenBatch(examples: examples)
        #expect(batch.lengths == [5, 8, 2] && batch.rowCount == 15 && batch.seqLen == 8)
        #expect(batch.positions == [0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 5, 6, 7, 0, 1])
        #expect(batch.tokens == examples.flatMap { $0.tokens.dropLast() })
        // Answer scope: a row is labelled from the last prompt token on, with the next token.
        let i = TokenBatch.ignore
        #expect(batch.targets == [i, i, examples[0].tokens[3], examples[0].tokens[4], examples[0].tokens[5],
                                  i, i, i] + examples[1].tokens[4...] + examples[2].tokens[1...])
        #expect(TokenBatch(examples: examples, scope: .all).targets == examples.flatMap { $0.tokens.dropFirst() })
        let padded = TokenBatch(batchSize: 2, seqLen: 4, tokens: Array(repeating: 1, count: 8), targets: Array(repeating: 2, count: 8))
        #expect(padded.lengths == [4, 4] && padded.positions == [0, 1, 2, 3, 0, 1, 2, 3])
    }

    /// Full fine-tuning and LoRA on the packed batch: the loss and every
    /// gradient equal the padded batch's, whose pad rows carry no label and
    /// precede nothing.
    @Test(arguments: [MethodKind.full, .lora])
    func lossAndGradientsEqualThePaddedBatch(kind: MethodKind) throws {
        let config = TinyModels.config()
        let model = TinyModels.model(config)
        let examples = Self.examples(vocab: config.vocabularySize)
        let packed = TokenBatch(examples: examples), padded = Self.padded(examples)
        #expect(packed.labelledCount == padded.labelledCount && packed.rowCount < padded.rowCount)
        let ctx = ComputeContext(threads: 2)
        var method = MethodSettings(kind: kind)
        if kind == .lora { method.rank = 4 }
        func run(_ batch: TokenBatch) throws -> (loss: Float, gradients: [Float]) {
            let ft = try FineTuning(base: model, method: method, optimizer: AdamWSettings(), maxBatch: 3, maxSeq: batch.seqLen, seed: 1, context: ctx)
            if kind == .lora {  // B starts at zero: move it so that every adapter gradient is non-zero.
                var rng = SeededGenerator(seed: 9)
                for i in 0..<ft.parameters.capacity { ft.parameters.base[i] += 0.05 * rng.nextNormal() }
            }
            let loss = ft.network.forward(batch, ft.activations, context: ctx)
            ft.network.backward(batch, ft.activations, context: ctx)
            return (loss, Array(UnsafeBufferPointer(start: ft.gradients.base, count: ft.gradients.capacity)))
        }
        let a = try run(packed), b = try run(padded)
        #expect(abs(a.loss - b.loss) <= 1e-6 * abs(b.loss), "loss \(a.loss) packed, \(b.loss) padded")
        let scale = b.gradients.map(abs).max() ?? 0
        let worst = zip(a.gradients, b.gradients).map { abs($0 - $1) }.max() ?? 0
        #expect(scale > 0 && worst <= 1e-5 * scale, "\(kind): gradients differ by \(worst) (largest \(scale))")
    }
}
