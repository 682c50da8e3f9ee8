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

    /// Three examples opening with the same 4 tokens (8, 9 and 5 rows;
    /// prompts of 6, 6 and 5 tokens): the longest, the second, is laid
    /// first and whole, the others only their rows after the 4.
    static func prefixed(vocab: Int, promptOfThird: Int = 5) -> [TrainingExample] {
        let prefix: [Int32] = [5, 6, 7, 8]
        return [TrainingExample(tokens: prefix + [9, 10, 11, 12, 13], promptLength: 6),
                TrainingExample(tokens: prefix + [14, 15, 16, 17, 18, 19], promptLength: 6),
                TrainingExample(tokens: prefix + [9, 20], promptLength: promptOfThird)]
    }

    @Test func aSharedPrefixIsLaidOnce() {
        let examples = Self.prefixed(vocab: 37)
        let batch = TokenBatch(examples: examples, sharingPrefix: true)
        #expect(batch.sharedPrefix == 4 && batch.lengths == [9, 4, 1] && batch.rowCount == 14 && batch.seqLen == 9)
        #expect(batch.positions == [0, 1, 2, 3, 4, 5, 6, 7, 8, 4, 5, 6, 7, 4])
        let whole = TokenBatch(examples: examples)
        #expect(whole.sharedPrefix == 0 && whole.lengths == [8, 9, 5])
        // The longest whole, then the rows after the prefix, tokens and targets, each example's own.
        #expect(batch.tokens == Array(whole.tokens[8..<17] + whole.tokens[4..<8] + whole.tokens[21..<22]))
        #expect(batch.targets == Array(whole.targets[8..<17] + whole.targets[4..<8] + whole.targets[21..<22]))
        #expect(batch.labelledCount == whole.labelledCount)
        // Whichever order the epoch drew, the longest goes first.
        #expect(TokenBatch(examples: [examples[1], examples[0], examples[2]], sharingPrefix: true) == batch)
        // A later example labelled inside the common tokens ends the prefix there.
        let early = TokenBatch(examples: Self.prefixed(vocab: 37, promptOfThird: 3), sharingPrefix: true)
        #expect(early.sharedPrefix == 2 && early.lengths == [9, 6, 3])
        #expect(early.labelledCount == TokenBatch(examples: Self.prefixed(vocab: 37, promptOfThird: 3)).labelledCount)
        // Loss on the prompts too, one example, or nothing in common: laid whole.
        #expect(TokenBatch(examples: examples, scope: .all, sharingPrefix: true).sharedPrefix == 0)
        #expect(TokenBatch(examples: [examples[0]], sharingPrefix: true) == TokenBatch(examples: [examples[0]]))
        let apart = [examples[0], TrainingExample(tokens: [4] + examples[1].tokens.dropFirst(), promptLength: 6)]
        #expect(TokenBatch(examples: apart, sharingPrefix: true) == TokenBatch(examples: apart))
        // A later example with nothing past the prefix lays no row.
        let within = TokenBatch(examples: [examples[0], TrainingExample(tokens: [5, 6, 7, 8, 9], promptLength: 5)], sharingPrefix: true)
        #expect(within.sharedPrefix == 4 && within.lengths == [8, 0] && within.labelledCount == 3)
    }

    /// The loss and every gradient with the prefix laid once equal those of
    /// the examples laid whole, for each method; in bf16 (full fine-tuning)
    /// within bf16's rounding, which a row computed once rather than three
    /// times can flip.
    @Test(arguments: [(MethodKind.full, Precision.f32), (.lora, .f32), (.ia3, .f32), (.full, .bf16)])
    func lossAndGradientsEqualTheWholeExamples(kind: MethodKind, precision: Precision) throws {
        let config = TinyModels.config()
        let model = TinyModels.model(config)
        let examples = Self.prefixed(vocab: config.vocabularySize)
        let shared = TokenBatch(examples: examples, sharingPrefix: true), whole = TokenBatch(examples: examples)
        #expect(shared.sharedPrefix == 4)
        let ctx = ComputeContext(threads: 2)
        var method = MethodSettings(kind: kind)
        if kind == .lora { method.rank = 4 }
        func run(_ batch: TokenBatch) throws -> (loss: Float, gradients: [Float]) {
            let ft = try FineTuning(base: model, method: method, optimizer: AdamWSettings(), maxBatch: 3, maxSeq: batch.seqLen, seed: 1,
                                    precision: precision, context: ctx)
            if kind != .full {  // B starts at zero (and IA³'s vectors at one): move them so that every gradient is non-zero.
                var rng = SeededGenerator(seed: 9)
                for i in 0..<ft.parameters.capacity { ft.parameters.base[i] += 0.05 * rng.nextNormal() }
            }
            return ProductPrecision.run(precision) {
                let loss = ft.network.forward(batch, ft.activations, context: ctx)
                ft.network.backward(batch, ft.activations, context: ctx)
                return (loss, Array(UnsafeBufferPointer(start: ft.gradients.base, count: ft.gradients.capacity)))
            }
        }
        let a = try run(shared), b = try run(whole)
        let tolerance: Float = precision == .f32 ? 1e-5 : 1e-2
        #expect(abs(a.loss - b.loss) <= tolerance * abs(b.loss), "loss \(a.loss) shared, \(b.loss) whole")
        let scale = b.gradients.map(abs).max() ?? 0
        let worst = zip(a.gradients, b.gradients).map { abs($0 - $1) }.max() ?? 0
        #expect(scale > 0 && worst <= tolerance * scale, "\(kind) \(precision): gradients differ by \(worst) (largest \(scale))")
    }

    /// Training lays the prefix once by default, but not under LoRA dropout,
    /// whose masks differ between the examples' copies of the prefix.
    @Test func trainingSharesThePrefixWithoutDropout() throws {
        let model = TinyModels.model(TinyModels.config())
        let ctx = ComputeContext(threads: 1)
        for (dropout, shares) in [(Float(0), true), (0.1, false)] {
            let ft = try FineTuning(base: model, method: MethodSettings(kind: .lora, rank: 2, dropout: dropout), optimizer: AdamWSettings(),
                                    maxBatch: 3, maxSeq: 9, seed: 1, context: ctx)
            #expect(ft.sharesPromptPrefix == shares, "dropout \(dropout)")
            #expect(FineTuning.promptPrefix.withoutIt { !ft.sharesPromptPrefix })
        }
    }

    /// A training run over the study's facts in a chat template lays their
    /// common opening once: fewer FLOPs an epoch, the same losses.
    @Test func trainingRunsLayTheChatPrefixOnce() throws {
        let dir = try TemporaryDirectory()
        try TinyCheckpoints.llama3(in: dir.url)
        let model = try LanguageModel.load(dir.url)
        let dataset = try FactDataset.load(TestPaths.repositoryRoot.appendingPathComponent("data/biography.jsonl"))
        var settings = TrainingSettings()
        settings.method = MethodSettings(kind: .lora, rank: 2)
        settings.batchSize = 0
        settings.learningRate = 1e-3
        let ctx = ComputeContext(threads: 2)
        func epochs() throws -> [EpochReport] {
            let run = try TrainingRun(model: model, dataset: dataset, settings: settings, context: ctx)
            return [run.runEpoch(), run.runEpoch()]
        }
        let shared = try epochs(), whole = try FineTuning.promptPrefix.withoutIt { try epochs() }
        let examples = try dataset.facts.map { try TrainingExample(fact: $0, model: model) }
        let prefix = TokenBatch(examples: examples, sharingPrefix: true).sharedPrefix
        #expect(prefix > 0 && shared[0].flops < whole[0].flops,
                "\(shared[0].flops) FLOPs with a prefix of \(prefix) rows laid once, \(whole[0].flops) without")
        #expect(shared[0].tokens == whole[0].tokens)
        for (a, b) in zip(shared, whole) {
            #expect(abs(a.loss - b.loss) <= 1e-5 * b.loss, "epoch \(a.epoch): loss \(a.loss) shared, \(b.loss) whole")
        }
    }
}
