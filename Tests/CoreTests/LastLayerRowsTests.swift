// LastLayerRowsTests: the last layer runs its o projection and MLP over the
// head's rows alone (LastLayerRows.swift): the rows move and come back
// exactly, and the loss, every gradient and the logits are those of the pass
// over every row, for every method and both precisions.
import Foundation
import Testing
import TestSupport
import Trial
@testable import Core

@Suite struct LastLayerRowsTests {
    /// Gathering rows to the front and scattering them back restores them,
    /// and leaves every other row zero (as the gradient there is).
    @Test func rowsGoToTheFrontAndBack() {
        let n = 9, width = 3, picked: [Int32] = [0, 2, 3, 7]
        let storage = UnsafeMutablePointer<Float>.allocate(capacity: n * width)
        defer { storage.deallocate() }
        let x = FloatPointer(storage)
        for i in 0..<(n * width) { x.base[i] = Float(i + 1) }
        picked.withUnsafeBufferPointer { index in
            gatherRows(x, width: width, index.baseAddress!, count: picked.count)
            let front = Array(UnsafeBufferPointer(start: x.base, count: picked.count * width))
            #expect(front == picked.flatMap { r in (0..<width).map { Float(Int(r) * width + $0 + 1) } })
            scatterRows(x, width: width, index.baseAddress!, count: picked.count, rows: n)
        }
        for r in 0..<n {
            let row = Array(UnsafeBufferPointer(start: x.base + r * width, count: width))
            let expected = picked.contains(Int32(r)) ? (0..<width).map { Float(r * width + $0 + 1) } : [0, 0, 0]
            #expect(row == expected, "row \(r)")
        }
    }

    /// Only strictly increasing rows, fewer than the batch's and within it, are compacted.
    @Test func whichRowsAreCompacted() {
        func compacts(_ rows: [Int32], of n: Int) -> Bool {
            rows.withUnsafeBufferPointer { LlamaNetwork.compactsLastLayer(rows: rows.count, of: n, $0.baseAddress!) }
        }
        #expect(compacts([1, 4], of: 6))
        #expect(!compacts([4, 1], of: 6) && !compacts([1, 1], of: 6) && !compacts([1, 6], of: 6) && !compacts([-1, 2], of: 6))
        #expect(!compacts([0, 1, 2], of: 3), "every row labelled: nothing to skip")
        #expect(![Int32(0)].withUnsafeBufferPointer { LlamaNetwork.compactsLastLayer(rows: 0, of: 6, $0.baseAddress!) }, "no rows")
        #expect(LlamaNetwork.lastLayerRows.withoutIt { !compacts([1, 4], of: 6) })
    }

    /// One forward and backward of the tiny golden batch with the last layer
    /// compacted and with every row through it: the same loss and gradients.
    /// LoRA adapts all seven projections, so that o, gate, up and down train
    /// in the compacted rows; IA³ scales down's input there. The adapter
    /// methods in f32 take the fused head (FusedHead.swift), so they run
    /// with it and with the two head products.
    @Test(arguments: [MethodKind.full, .lora, .qlora, .ia3], [Precision.f32, .bf16])
    func sameLossAndGradientsAsEveryRow(_ kind: MethodKind, precision: Precision) throws {
        try #require(LlamaNetwork.lastLayerRows.byEnvironment, "\(LlamaNetwork.lastLayerRows.environmentKey)=off turns off what this test checks")
        let fuses = fusedHead.byEnvironment && kind != .full && precision == .f32
        try checkEveryRow(kind, precision: precision, fused: fuses)
        if fuses { try fusedHead.withoutIt { try checkEveryRow(kind, precision: precision, fused: false) } }
    }

    private func checkEveryRow(_ kind: MethodKind, precision: Precision, fused: Bool) throws {
        let loaded = try ModelLocation.open(TestPaths.golden("tiny-tied"))
        let ctx = ComputeContext(threads: 2)
        let model = try LlamaModel(config: loaded.configuration, source: loaded.tensors, storage: .training(kind, precision: precision),
                                   context: ctx)
        let b = try BFloat16GoldenTests.batch(try BFloat16GoldenTests.golden("tiny-tied"))
        try #require(b.labelledCount > 0 && b.labelledCount < b.rowCount)
        var method = MethodSettings(kind: kind, rank: 4, alpha: 8)
        if kind == .lora || kind == .qlora { method.targets = ProjectionKind.allCases }
        func run(backwardWithEveryRow: Bool = false) throws -> (loss: Float, gradients: [Float], compacted: Bool) {
            let ft = try LastLayerRowsTests.trial(model, method, batch: b, precision: precision, context: ctx)
            // As `FineTuning.step` runs it: in the trial's product precision, which decides the head's path.
            let loss = ProductPrecision.run(precision) { ft.network.forward(b, ft.activations, context: ctx) }
            #expect(ft.activations.fusedHead == fused, "\(kind) \(precision): fused head \(ft.activations.fusedHead), expected \(fused)")
            let compacted = ft.activations.compactedLastLayer
            // Backward follows the forward's choice, whatever the switch says when it runs.
            ProductPrecision.run(precision) {
                if backwardWithEveryRow {
                    LlamaNetwork.lastLayerRows.withoutIt { _ = ft.network.backward(b, ft.activations, context: ctx) }
                } else {
                    ft.network.backward(b, ft.activations, context: ctx)
                }
            }
            return (loss, Array(UnsafeBufferPointer(start: ft.gradients.base, count: ft.gradients.capacity)), compacted)
        }
        let compact = try run(), every = try LlamaNetwork.lastLayerRows.withoutIt { try run() }
        let switched = try run(backwardWithEveryRow: true)
        #expect(compact.compacted && !every.compacted && switched.compacted)
        #expect(switched.gradients == compact.gradients, "backward took the switch's say over the forward's")
        // bf16 products round their inputs to 8 significant bits. The products' blocking differs with their row
        // count, so an input can differ in its last f32 bit between the two passes and round the other way: 2⁻⁸ of
        // that input. Measured: 3.2e-3 of the largest gradient (QLoRA, bf16 products multiplying in f32 on an AVX2
        // build); a row taken from the wrong place differs by the gradient's own size.
        let (lossTolerance, gradientTolerance): (Float, Float) = precision == .bf16 ? (1e-3, 1e-2) : (1e-6, 1e-5)
        #expect(abs(compact.loss - every.loss) <= lossTolerance * abs(every.loss), "loss \(compact.loss) compacted, \(every.loss) every row")
        let scale = every.gradients.map(abs).max() ?? 0
        let worst = zip(compact.gradients, every.gradients).map { abs($0 - $1) }.max() ?? 0
        #expect(scale > 0 && worst <= gradientTolerance * scale,
                "\(kind) \(precision) fused \(fused): gradients differ by \(worst) (largest \(scale))")
        #expect(compact.gradients.allSatisfy { $0.isFinite })
    }

    /// A trial on `model` whose adapters are moved off their start (LoRA's B
    /// starts at zero, IA³'s scales at one), so that every gradient is non-zero.
    static func trial(_ model: LlamaModel, _ method: MethodSettings, batch b: TokenBatch, precision: Precision,
                      context ctx: ComputeContext) throws -> FineTuning {
        let ft = try FineTuning(base: model, method: method, optimizer: AdamWSettings(maxGradNorm: nil),
                                maxBatch: b.batchSize, maxSeq: b.seqLen, seed: 3, precision: precision, context: ctx)
        if method.kind != .full {
            var rng = SeededGenerator(seed: 9)
            for i in 0..<ft.parameters.capacity { ft.parameters.base[i] += 0.05 * rng.nextNormal() }
            ft.network.invalidateTrainedRoundings()
        }
        return ft
    }

    /// Inference's logits at chosen rows: compacted when the rows increase,
    /// every row otherwise; the same logits either way.
    @Test func logitsAtChosenRows() throws {
        let config = TinyModels.config()
        let model = TinyModels.model(config)
        let ctx = ComputeContext(threads: 2)
        let network = model.frozenNetwork()
        let tokens: [Int32] = [3, 9, 4, 17, 22, 5, 8, 30]
        let batch = TokenBatch(batchSize: 1, seqLen: tokens.count, tokens: tokens, targets: Array(repeating: TokenBatch.ignore, count: tokens.count))
        let acts = LlamaActivations(network: network, maxBatch: 1, maxSeq: tokens.count, threads: 2)
        let rows = [2, 5, 7]
        let compact = network.logits(batch, outputRows: rows, acts, context: ctx)
        let every = LlamaNetwork.lastLayerRows.withoutIt { network.logits(batch, outputRows: rows, acts, context: ctx) }
        let reversed = network.logits(batch, outputRows: rows.reversed(), acts, context: ctx)
        let V = config.vocabularySize
        let worst = zip(compact, every).map { abs($0 - $1) }.max() ?? .infinity
        #expect(compact.count == rows.count * V && worst <= 1e-5, "compacted against every row: \(worst)")
        for (i, r) in rows.reversed().enumerated() {
            let j = rows.firstIndex(of: r)!
            #expect(Array(reversed[(i * V)..<((i + 1) * V)]) == Array(every[(j * V)..<((j + 1) * V)]), "row \(r) out of order")
        }
    }

    /// Decoding stops the rows the head does not read at the last layer's
    /// attention (a long prompt's first piece: all of them): the same tokens
    /// as with every row through it, for prompts sharing a prefix, one longer
    /// than a piece, and proposals right and wrong; right ones put ~100 rows
    /// through the head in one pass, more than one block of logits.
    @Test func decodingGivesTheSameTokens() throws {
        try #require(LlamaNetwork.lastLayerRows.byEnvironment, "\(LlamaNetwork.lastLayerRows.environmentKey)=off turns off what this test checks")
        let (dir, lm, network) = try EvaluationTests.tinyNetwork()
        defer { withExtendedLifetime((dir, lm)) {} }
        let ctx = ComputeContext(threads: 2)
        let common = (0..<45).map { Int32(100 + 37 * $0 % 900) }
        let long: [[Int32]] = [common + [7], common + [8, 9, 10], [5] + common + common, [6, 7]]
        let short: [[Int32]] = [[3, 4], [5, 6, 7], [8], [9, 10]]
        #expect(long[2].count > CachedGenerator.pieceLength)
        let tokens = 24
        for prompts in [long, short] {
            let generator = CachedGenerator(network: network, maxBatch: prompts.count, maxLength: 130, context: ctx)
            let on = generator.generate(prompts: prompts, maxNewTokens: tokens, stopTokens: [])
            let off = LlamaNetwork.lastLayerRows.withoutIt { generator.generate(prompts: prompts, maxNewTokens: tokens, stopTokens: []) }
            #expect(on == off)
            // Half of each answer proposed right, then a wrong token: verified rows and refused ones; then every answer right.
            for recent in [on.map { Array($0.prefix(tokens / 2)) + [Int32(1)] }, on] {
                let proposedOn = generator.generate(prompts: prompts, maxNewTokens: tokens, stopTokens: [], recent: recent)
                let proposedOff = LlamaNetwork.lastLayerRows.withoutIt {
                    generator.generate(prompts: prompts, maxNewTokens: tokens, stopTokens: [], recent: recent)
                }
                #expect(proposedOn == on && proposedOff == on)
            }
            if prompts == short {
                // The right answers in one pass: ~100 rows through the head, more than one block of logits.
                _ = generator.generate(prompts: prompts, maxNewTokens: tokens, stopTokens: [], recent: on)
                #expect(generator.passes == 1 && generator.headRows > 64, "\(generator.passes) passes, \(generator.headRows) head rows")
            }
            for (b, prompt) in prompts.enumerated() {
                let greedy = LlamaNetwork.lastLayerRows.withoutIt { network.generateGreedy(prompt: prompt, maxTokens: tokens, context: ctx) }
                #expect(on[b] == greedy, "prompt \(b)")
            }
        }
    }

    /// A training step's FLOPs leave out the last layer's o and MLP at the
    /// rows the head does not read: forward's, backward's input gradients'
    /// and, in full fine-tuning, the weight gradients'.
    @Test func trainingFlopsLeaveOutTheSkippedRows() {
        let model = LlamaModel(config: AdapterTests.smolLM2)
        let i = TokenBatch.ignore
        let batch = TokenBatch(batchSize: 1, seqLen: 10, tokens: Array(repeating: 3, count: 10), targets: [i, i, i, i, i, i, 4, 5, 6, 7])
        let skipped: Double = 2 * 6 * (576 * 576 + 3 * 576 * 1536)
        for (trainsBase, passes) in [(false, 2.0), (true, 3.0)] {
            let every = LlamaNetwork.lastLayerRows.withoutIt { model.trainingFlops(batch, trainsBase: trainsBase) }
            #expect(every - model.trainingFlops(batch, trainsBase: trainsBase) == passes * skipped, "trainsBase \(trainsBase)")
        }
        let labelled = TokenBatch(batchSize: 1, seqLen: 10, tokens: Array(repeating: 3, count: 10), targets: Array(repeating: 4, count: 10))
        #expect(model.trainingFlops(labelled, trainsBase: false) == LlamaNetwork.lastLayerRows.withoutIt { model.trainingFlops(labelled, trainsBase: false) })
    }
}
