// OneDNNReuseTests: oneDNN products reusing their thread's stream and
// scratchpad and reading frozen weights from packed copies give the products
// of the path without reuse, and a weight that changes is packed again once
// invalidated, never served from its stale copy.
import Foundation
import Testing
@testable import Core
import TestSupport
import Trial

@Suite struct OneDNNReuseTests {
    static let arguments: [(MatmulEngineTests.Case, Bool)] = MatmulEngineTests.cases.flatMap { t in [(t, false), (t, true)] }

    /// Runs the product of `t` through oneDNN on `a`, `b` (Float32, or bf16 when `bf16`) into a copy of `c`.
    static func product(
        _ t: MatmulEngineTests.Case, bf16: Bool, a: [Float], lda: Int, b: [Float], ldb: Int, c: [Float], ldc: Int,
        packed: PackedWeight?, reuse: Bool
    ) -> [Float] {
        var out = c
        let key = OneDNNMatmul.Key(
            transA: t.transA, transB: t.transB, m: t.m, n: t.n, k: t.k, lda: lda, ldb: ldb, ldc: ldc,
            alpha: t.alpha, beta: t.beta, bf16: bf16, threads: 2)
        var ran = false
        if bf16 {
            var aBits = a.map(bfloat16Bits), bBits = b.map(bfloat16Bits)
            ran = OneDNNMatmul.run(key, a: &aBits, b: &bBits, c: &out, packed: packed, reuse: reuse)
        } else {
            var a = a, b = b
            ran = OneDNNMatmul.run(key, a: &a, b: &b, c: &out, packed: packed, reuse: reuse)
        }
        #expect(ran, "oneDNN refused \(t)")
        return out
    }

    /// Whether oneDNN has no bf16 matmul on this CPU, checked against the
    /// CPU's flags: oneDNN 2.6 has one exactly on AVX-512 (`avx512_core`).
    /// Without it, oneDNN must refuse `t` in bf16 (the products then run as
    /// f32 products of the rounded inputs, `MatmulEngine.hasBF16Kernels`),
    /// and the bf16 cases of these tests check that instead of oneDNN's bf16
    /// products, and say so.
    static func bf16Refused(_ t: MatmulEngineTests.Case) -> Bool {
        if OneDNNMatmul.supportsBF16 {
            #expect(CPUFeatures.hasAVX512, "oneDNN made a bf16 primitive on \(CPUFeatures.modelName), which has no AVX-512")
            return false
        }
        #expect(!CPUFeatures.hasAVX512, "oneDNN refused a bf16 matmul on \(CPUFeatures.modelName), which has AVX-512")
        #expect(!MatmulEngine.hasBF16Kernels)
        #expect(MatmulEngine.bf16Notice?.contains("over bf16-rounded inputs") == true)
        let r = BFloat16ProductTests.roundedReference(t)
        var aBits = r.a.map(bfloat16Bits), bBits = r.b.map(bfloat16Bits), c = r.c
        let key = OneDNNMatmul.Key(transA: t.transA, transB: t.transB, m: t.m, n: t.n, k: t.k, lda: r.lda, ldb: r.ldb, ldc: r.ldc,
                                   alpha: t.alpha, beta: t.beta, bf16: true, threads: 2)
        #expect(!OneDNNMatmul.run(key, a: &aBits, b: &bBits, c: &c, reuse: false), "oneDNN ran a bf16 product the probe says it has not")
        #expect(!OneDNNMatmul.run(key, a: &aBits, b: &bBits, c: &c, packed: PackedWeight(), reuse: true))
        print("note: oneDNN has no bf16 matmul on \(CPUFeatures.modelName) (no AVX-512): checked that it refuses \(t)")
        return true
    }

    @Test(arguments: arguments)
    func reusedAndPackedEqualUnshared(_ t: MatmulEngineTests.Case, bf16: Bool) throws {
        try #require(OneDNNMatmul.isAvailable, "oneDNN's CPU engine could not be created (libdnnl-dev, scripts/setup.sh)")
        if bf16, Self.bf16Refused(t) { return }
        let r = BFloat16ProductTests.roundedReference(t)
        let unshared = Self.product(t, bf16: bf16, a: r.a, lda: r.lda, b: r.b, ldb: r.ldb, c: r.c, ldc: r.ldc, packed: nil, reuse: false)
        let reused = Self.product(t, bf16: bf16, a: r.a, lda: r.lda, b: r.b, ldb: r.ldb, c: r.c, ldc: r.ldc, packed: nil, reuse: true)
        let weight = PackedWeight()
        let packedFirst = Self.product(t, bf16: bf16, a: r.a, lda: r.lda, b: r.b, ldb: r.ldb, c: r.c, ldc: r.ldc, packed: weight, reuse: true)
        #expect(weight.byteCount > 0, "no packed copy was made: the packed path did not run")
        let packedAgain = Self.product(t, bf16: bf16, a: r.a, lda: r.lda, b: r.b, ldb: r.ldb, c: r.c, ldc: r.ldc, packed: weight, reuse: true)
        let expected = bf16 ? r.expected : r.f32
        #expect(FewRowsProductTests.relativeError(unshared, expected) < 1e-5, "\(t)")
        #expect(reused == unshared, "\(t)")
        #expect(FewRowsProductTests.relativeError(packedFirst, unshared) < 1e-6, "\(t)")
        #expect(packedAgain == packedFirst, "\(t)")
    }

    /// The backward's dY·W over a frozen f32 weight stored in plain rows:
    /// where oneDNN asks for that very layout (its AVX2 matmul does), the
    /// weight is read where it is and no copy is made; a weight whose rows
    /// are wider than n, or a CPU whose oneDNN asks for a blocked layout,
    /// gets a copy. Either way the product is the unpacked one's.
    @Test(arguments: [(96, 0), (256, 0), (96, 3)])
    func storedLayoutIsNotCopied(n: Int, pad: Int) throws {
        try #require(OneDNNMatmul.isAvailable, "oneDNN's CPU engine could not be created (libdnnl-dev, scripts/setup.sh)")
        let t = MatmulEngineTests.Case(transA: false, transB: false, m: 40, n: n, k: 64, pad: pad, alpha: 1, beta: 0)
        let r = BFloat16ProductTests.roundedReference(t)
        let key = OneDNNMatmul.Key(transA: false, transB: false, m: t.m, n: n, k: t.k, lda: r.lda, ldb: r.ldb, ldc: r.ldc,
                                   alpha: 1, beta: 0, bf16: false, threads: 2)
        let inPlace = OneDNNMatmul.readsPackedInPlace(key)
        if OneDNNMatmul.hasAVX2Sgemm { #expect(inPlace == (pad == 0), "oneDNN's AVX2 matmul packs B in plain rows of n: \(t)") }
        let weight = PackedWeight()
        let viaPack = Self.product(t, bf16: false, a: r.a, lda: r.lda, b: r.b, ldb: r.ldb, c: r.c, ldc: r.ldc, packed: weight, reuse: true)
        let plain = Self.product(t, bf16: false, a: r.a, lda: r.lda, b: r.b, ldb: r.ldb, c: r.c, ldc: r.ldc, packed: nil, reuse: true)
        #expect((weight.byteCount == 0) == inPlace, "\(t): copied \(weight.byteCount) bytes, in place \(inPlace)")
        #expect(FewRowsProductTests.relativeError(viaPack, r.f32) < 1e-5, "\(t)")
        // Not bit for bit: each call copies the arrays, and B's alignment decides the column split.
        #expect(FewRowsProductTests.relativeError(viaPack, plain) < 1e-6, "\(t)")
    }

    /// A changed weight, once invalidated, is packed again: the product
    /// follows the new values (without `invalidate` it would read the old copy).
    @Test(arguments: [false, true])
    func changedWeightIsNotServedStale(bf16: Bool) throws {
        try #require(OneDNNMatmul.isAvailable, "oneDNN's CPU engine could not be created (libdnnl-dev, scripts/setup.sh)")
        let t = MatmulEngineTests.Case(transA: false, transB: true, m: 24, n: 96, k: 64, pad: 0, alpha: 1, beta: 0)
        if bf16, Self.bf16Refused(t) { return }
        var r = BFloat16ProductTests.roundedReference(t)
        let weight = PackedWeight()
        let before = Self.product(t, bf16: bf16, a: r.a, lda: r.lda, b: r.b, ldb: r.ldb, c: r.c, ldc: r.ldc, packed: weight, reuse: true)
        #expect(weight.byteCount > 0, "no packed copy was made: the packed path did not run")
        // The optimizer's kind of change: every element moves.
        r.b = r.b.map { -2 * $0 + 0.25 }
        weight.invalidate()
        let after = Self.product(t, bf16: bf16, a: r.a, lda: r.lda, b: r.b, ldb: r.ldb, c: r.c, ldc: r.ldc, packed: weight, reuse: true)
        let unshared = Self.product(t, bf16: bf16, a: r.a, lda: r.lda, b: r.b, ldb: r.ldb, c: r.c, ldc: r.ldc, packed: nil, reuse: false)
        #expect(FewRowsProductTests.relativeError(after, unshared) < 1e-6)
        #expect(FewRowsProductTests.relativeError(before, unshared) > 0.1, "the change did not change the product")
    }

    /// A square weight read transposed (forward) and plain (backward) gets a
    /// packed copy per direction: the two layouts describe the same dims.
    @Test func squareWeightPacksEachDirection() throws {
        try #require(OneDNNMatmul.isAvailable, "oneDNN's CPU engine could not be created (libdnnl-dev, scripts/setup.sh)")
        let weight = PackedWeight()
        for transB in [true, false] {
            let t = MatmulEngineTests.Case(transA: false, transB: transB, m: 16, n: 64, k: 64, pad: 0, alpha: 1, beta: 0)
            if Self.bf16Refused(t) { continue }
            let r = BFloat16ProductTests.roundedReference(t)
            let packed = Self.product(t, bf16: true, a: r.a, lda: r.lda, b: r.b, ldb: r.ldb, c: r.c, ldc: r.ldc, packed: weight, reuse: true)
            #expect(FewRowsProductTests.relativeError(packed, r.expected) < 1e-5, "transB \(transB)")
        }
    }

    /// The frozen bf16 base's products through `FrozenMatrix` pack it once and
    /// give what the unpacked product gives.
    @Test func frozenBF16MatrixPacksOnce() throws {
        try #require(OneDNNMatmul.isAvailable, "oneDNN's CPU engine could not be created (libdnnl-dev, scripts/setup.sh)")
        let n = 12, inDim = 64, outDim = 80
        var rng = SeededGenerator(seed: 9)
        let x = (0..<(n * inDim)).map { _ in rng.nextNormal() }, w = (0..<(outDim * inDim)).map { _ in rng.nextNormal() }
        let context = ComputeContext(threads: 2)
        let stored = w.withUnsafeBufferPointer { BFloat16Matrix($0.baseAddress!, rows: outDim, columns: inDim, context: context) }
        var packed = [Float](repeating: 0, count: n * outDim), plain = packed
        x.withUnsafeBufferPointer { x in
            let input = FloatPointer(UnsafeMutablePointer(mutating: x.baseAddress!))
            _ = input
            // Whether a model's frozen bf16 matrices pack is its own rule (LlamaModel.packsFrozenBFloat16): the
            // packed path is asked for directly here.
            gemmBFloat16(transA: false, transB: true, m: n, n: outDim, k: inDim, a: .f32(x.baseAddress!), lda: inDim,
                         b: .bf16(stored.base), ldb: inDim, beta: 0, c: &packed, ldc: outDim, packed: stored.packed)
            gemmBFloat16(transA: false, transB: true, m: n, n: outDim, k: inDim, a: .f32(x.baseAddress!), lda: inDim,
                         b: .bf16(stored.base), ldb: inDim, beta: 0, c: &plain, ldc: outDim)
        }
        // Only bf16 kernels read packed copies: the f32 path multiplies the plain matrix widened.
        #expect((stored.packed.byteCount > 0) == MatmulEngine.hasBF16Kernels)
        #expect(FewRowsProductTests.relativeError(packed, plain) < 1e-6)
    }

    /// The tiny tied model with a trained copy of its weights and gradients,
    /// as a network that packs its trained weights and one that does not.
    /// The networks point into the two arenas: the caller keeps them alive.
    static func trainedTinyModel() throws -> (LlamaModel, TokenBatch, FloatArena, FloatArena, LlamaNetwork, LlamaNetwork) {
        let loaded = try ModelLocation.open(TestPaths.golden("tiny-tied"))
        let model = try LlamaModel(config: loaded.configuration, source: loaded.tensors)
        let b = try BFloat16GoldenTests.batch(try BFloat16GoldenTests.golden("tiny-tied"))
        let count = model.layout.totalCount
        let parameters = FloatArena(capacity: count), gradients = FloatArena(capacity: count)
        parameters.base.update(from: model.parameters.base, count: count)
        let weights = LlamaWeights(layout: model.layout, config: model.config, base: parameters.base)
        let grads = LlamaWeights(layout: model.layout, config: model.config, base: gradients.base)
        return (model, b, parameters, gradients,
                model.network(weights: weights, grads: grads, adapters: { _, _ in nil }, roundTrained: true),
                model.network(weights: weights, grads: grads, adapters: { _, _ in nil }))
    }

    /// A network that trains its weights in bf16 (full fine-tuning) rounds
    /// them to bf16 once, and once told they changed (`invalidateTrainedRoundings`,
    /// as `FineTuning.step` does around each step) rounds them again and
    /// computes with the new values, as the same network without the
    /// roundings does (there oneDNN rounds the f32 weight in every product).
    @Test func trainedWeightsAreRoundedAgainAfterTheyChange() throws {
        let (model, b, parameters, gradients, rounded, plain) = try Self.trainedTinyModel()
        defer { withExtendedLifetime((parameters, gradients)) {} }
        let ctx = ComputeContext(threads: 2)
        let count = model.layout.totalCount
        #expect(rounded.trainedRoundings.count == 7 * model.config.layerCount + 1)
        #expect(!rounded.trainedRoundings.contains { $0.isCurrent }, "rounded before any product asked")
        let acts = LlamaActivations(network: rounded, maxBatch: b.batchSize, maxSeq: b.seqLen, threads: ctx.threads)
        func logits(_ network: LlamaNetwork) -> [Float] {
            ProductPrecision.run(.bf16) { network.logits(b, outputRows: Array(0..<(b.batchSize * b.seqLen)), acts, context: ctx) }
        }
        let before = logits(rounded)
        #expect(rounded.trainedRoundings.allSatisfy { $0.isCurrent }, "a trained weight was not rounded")
        #expect(FewRowsProductTests.relativeError(before, logits(plain)) < 1e-5)
        // An optimizer step's kind of change to every weight.
        for i in 0..<count { parameters.base[i] = parameters.base[i] * 1.5 - 0.01 }
        rounded.invalidateTrainedRoundings()
        #expect(!rounded.trainedRoundings.contains { $0.isCurrent }, "a rounding stayed current after its weight changed")
        let after = logits(rounded), expected = logits(plain)
        #expect(FewRowsProductTests.relativeError(after, expected) < 1e-5)
        #expect(FewRowsProductTests.relativeError(before, expected) > 1e-2, "the change did not change the logits")
    }

    /// A trained weight keeps one bf16 copy, read by both directions (at
    /// Llama-3.2-1B a second is 2.47 GB), and its gradients equal those of
    /// the network without it.
    @Test func trainedWeightsKeepOneCopy() throws {
        let (model, b, parameters, gradients, rounded, plain) = try Self.trainedTinyModel()
        defer { withExtendedLifetime((parameters, gradients)) {} }
        let ctx = ComputeContext(threads: 2)
        let count = model.layout.totalCount
        func gradient(_ network: LlamaNetwork) -> [Float] {
            let acts = LlamaActivations(network: network, maxBatch: b.batchSize, maxSeq: b.seqLen, threads: ctx.threads)
            gradients.base.update(repeating: 0, count: count)
            ProductPrecision.run(.bf16) {
                _ = network.forward(b, acts, context: ctx)
                _ = network.backward(b, acts, context: ctx)
            }
            return Array(UnsafeBufferPointer(start: gradients.base, count: count))
        }
        let viaRounded = gradient(rounded)
        #expect(rounded.trainedRoundings.allSatisfy { $0.isCurrent }, "a trained weight was not rounded")
        // One bf16 copy of every trained matrix, not two; two, one per direction and no plain rows, of those kept blocked.
        let c = model.config, C = c.hiddenSize
        let perLayer = 2 * c.queryWidth * C + 2 * c.kvWidth * C + 3 * c.intermediateSize * C
        let oneLayout = 2 * (c.layerCount * perLayer + c.vocabularySize * C)
        let blockedBytes = rounded.trainedRoundings.filter(\.holdsBlockedRounding).map { 2 * $0.rows * $0.columns }.reduce(0, +)
        let roundedBytes = rounded.trainedRoundings.map(\.roundingBytes).reduce(0, +)
        #expect(roundedBytes == oneLayout + blockedBytes,
                "\(roundedBytes) bytes of bf16 copies; one of each matrix is \(oneLayout), plus \(blockedBytes) for the blocked ones' second")
        #expect(rounded.trainedRoundings.filter(\.holdsBlockedRounding).allSatisfy { !$0.holdsPlainBits })
        #expect(viaRounded.allSatisfy { $0.isFinite }, "a gradient is not finite")
        #expect(FewRowsProductTests.relativeError(viaRounded, gradient(plain)) < 1e-5)
    }

    /// Which models pack their f32 projections and head, and their bf16
    /// base and head, by default: the f32 projections' net cost of
    /// SmolLM2-135M and Llama-3.2-1B fits its limit, a 3B model's does not;
    /// SmolLM2's f32 head copies fit theirs, Llama-3.2-1B's do not; the bf16
    /// copies of both fit theirs, a 3B model's do not.
    @Test func packingFollowsTheModelsSize() throws {
        try #require(ProcessInfo.processInfo.environment["FACTSWEEP_PACK_F32_BASES"] == nil,
                     "FACTSWEEP_PACK_F32_BASES is set: the default rule cannot be checked")
        try #require(LlamaModel.releasesPlainRows,
                     "\(ReleasablePlainRows.environmentKey)=off or FACTSWEEP_HUGE_PAGES=off is set: no plain rows are released")
        let smolLM2 = LlamaConfiguration(
            vocabularySize: 49152, hiddenSize: 576, intermediateSize: 1536, layerCount: 30, headCount: 9, kvHeadCount: 3,
            headDimension: nil, rmsNormEps: 1e-5, ropeTheta: 100000, ropeScaling: .none, tieWordEmbeddings: true, maxPositions: 8192)
        let llama1B = LlamaConfiguration(
            vocabularySize: 128256, hiddenSize: 2048, intermediateSize: 8192, layerCount: 16, headCount: 32, kvHeadCount: 8,
            headDimension: 64, rmsNormEps: 1e-5, ropeTheta: 500000, ropeScaling: .none, tieWordEmbeddings: true, maxPositions: 131072)
        #expect(2 * LlamaModel.projectionBytes(smolLM2) == 849_346_560)
        #expect(2 * LlamaModel.projectionBytes(llama1B) == 7_784_628_224)
        let llama3B = LlamaConfiguration(
            vocabularySize: 128256, hiddenSize: 3072, intermediateSize: 8192, layerCount: 28, headCount: 24, kvHeadCount: 8,
            headDimension: 128, rmsNormEps: 1e-5, ropeTheta: 500000, ropeScaling: .none, tieWordEmbeddings: true, maxPositions: 131072)
        // Two copies of the projections less their released plain rows: SmolLM2's 0.42 GB and Llama-3.2-1B's 3.9 GB fit the
        // 4 GiB limit, Llama-3.2-3B's 11.3 GB do not.
        #expect(LlamaModel.packedProjectionNetBytes(smolLM2) == 424_673_280)
        #expect(LlamaModel.packedProjectionNetBytes(llama1B) == 3_892_314_112)
        #expect(LlamaModel.packedProjectionNetBytes(llama3B) == 11_274_289_152)
        #expect(LlamaModel.packsFrozenBases(smolLM2))
        #expect(LlamaModel.packsFrozenBases(llama1B))
        #expect(!LlamaModel.packsFrozenBases(llama3B))
        // The head's two copies (it stays plain: the tied embedding): SmolLM2's 0.23 GB fit the 1 GiB limit, Llama-3.2-1B's 2.1 GB do not.
        #expect(LlamaModel.packedHeadBytes(smolLM2) == 226_492_416)
        #expect(LlamaModel.packedHeadBytes(llama1B) == 2_101_346_304)
        #expect(LlamaModel.packsFrozenHead(smolLM2))
        #expect(!LlamaModel.packsFrozenHead(llama1B))
        // bf16 bases and head, two packed copies each: SmolLM2's 0.54 GB and Llama-3.2-1B's 4.9 GB fit, Llama-3.2-3B's 12.8 GB do not.
        #expect(LlamaModel.packedBFloat16Bytes(smolLM2) == 537_919_488)
        #expect(LlamaModel.packedBFloat16Bytes(llama1B) == 4_942_987_264)
        #expect(LlamaModel.packedBFloat16Bytes(llama3B) == 12_850_298_880)
        if ProcessInfo.processInfo.environment["FACTSWEEP_PACK_BF16_BASES"] == nil {
            #expect(LlamaModel.packsFrozenBFloat16(smolLM2))
            #expect(LlamaModel.packsFrozenBFloat16(llama1B))
            #expect(!LlamaModel.packsFrozenBFloat16(llama3B))
        } else {
            Issue.record("FACTSWEEP_PACK_BF16_BASES is set: the bf16 default rule cannot be checked")
        }
    }

    /// A LoRA trial in bf16 on a model whose packed copies fit the limit
    /// multiplies by packed copies of its bf16 base and its bf16 head, both
    /// directions, made by its first step and shared by a second trial,
    /// which computes the same step. Without bf16 kernels (a CPU without
    /// AVX-512) products multiply the plain matrix widened and make none.
    @Test func frozenBF16BasesArePackedOncePerDirection() throws {
        let loaded = try ModelLocation.open(TestPaths.golden("tiny-tied"))
        try #require(LlamaModel.packsFrozenBFloat16(loaded.configuration), "FACTSWEEP_PACK_BF16_BASES=off is set")
        let ctx = ComputeContext(threads: 2)
        let model = try LlamaModel(config: loaded.configuration, source: loaded.tensors, storage: .training(.lora, precision: .bf16),
                                   context: ctx)
        let b = try BFloat16GoldenTests.batch(try BFloat16GoldenTests.golden("tiny-tied"))
        let method = MethodSettings(kind: .lora, rank: 4, alpha: 8, dropout: 0, targets: ProjectionKind.allCases)
        func step() throws -> Float {
            let trial = try FineTuning(base: model, method: method, optimizer: AdamWSettings(), maxBatch: b.batchSize, maxSeq: b.seqLen,
                                       seed: 3, precision: .bf16, context: ctx)
            return trial.step(b, lr: 1e-3).loss
        }
        #expect(model.packedCopyBytes == 0)
        let first = try step()
        let c = model.config, C = c.hiddenSize
        let projections = c.layerCount * (2 * c.queryWidth * C + 2 * c.kvWidth * C + 3 * c.intermediateSize * C)
        if MatmulEngine.hasBF16Kernels {
            // Two layouts of every bf16 matrix, each at least the matrix's 2 bytes a value.
            #expect(model.packedCopyBytes >= 2 * 2 * (projections + c.vocabularySize * C), "\(model.packedCopyBytes) bytes packed")
        } else {
            #expect(model.packedCopyBytes == 0, "packed copies made where no bf16 kernel reads them")
            print("note: no bf16 kernels on \(CPUFeatures.modelName): checked that no packed copies are made")
        }
        let packed = model.packedCopyBytes
        #expect(try step() == first)
        #expect(model.packedCopyBytes == packed)
    }

    /// After a bf16 LoRA step the model's packed bf16 projections and head
    /// hold their values only in their packed copies (`BFloat16Matrix`'s
    /// release): decoding's few rows and a prompt's many read the same
    /// copies, so logits of 1 and 18 rows afterwards neither make the plain
    /// bits again nor change. Without bf16 kernels nothing packs and every
    /// matrix keeps its bits.
    @Test func frozenBF16BasesKeepOnlyTheirPackedCopiesAfterAStep() throws {
        let loaded = try ModelLocation.open(TestPaths.golden("tiny-tied"))
        try #require(LlamaModel.packsFrozenBFloat16(loaded.configuration), "FACTSWEEP_PACK_BF16_BASES=off is set")
        try #require(BFloat16Matrix.releasesPlainBits, "\(BFloat16Matrix.releaseEnvironmentKey)=off is set")
        try #require(OneDNNMatmul.reuse, "\(OneDNNMatmul.reuseEnvironmentKey)=off is set: no packed copies are made")
        let ctx = ComputeContext(threads: 2)
        let model = try LlamaModel(config: loaded.configuration, source: loaded.tensors, storage: .training(.lora, precision: .bf16),
                                   context: ctx)
        let frozen = model.frozenNetwork(precision: .bf16, context: ctx)
        func logits(rows count: Int) -> [Float] {
            let b = count == 1 ? TokenBatch(batchSize: 1, seqLen: 1, tokens: [5], targets: [TokenBatch.ignore])
                : TokenBatch(batchSize: 1, seqLen: count, tokens: (0..<count).map { Int32(3 + $0) },
                             targets: [Int32](repeating: TokenBatch.ignore, count: count))
            let acts = LlamaActivations(network: frozen, maxBatch: b.batchSize, maxSeq: b.seqLen, threads: ctx.threads)
            return ProductPrecision.run(.bf16) { frozen.logits(b, outputRows: Array(0..<(b.batchSize * b.seqLen)), acts, context: ctx) }
        }
        let before = (logits(rows: 1), logits(rows: 18))
        let b = try BFloat16GoldenTests.batch(try BFloat16GoldenTests.golden("tiny-tied"))
        let method = MethodSettings(kind: .lora, rank: 4, alpha: 8, dropout: 0, targets: ProjectionKind.allCases)
        let trial = try FineTuning(base: model, method: method, optimizer: AdamWSettings(), maxBatch: b.batchSize, maxSeq: b.seqLen,
                                   seed: 3, precision: .bf16, context: ctx)
        _ = trial.step(b, lr: 1e-3)
        // Backward forms no input gradient below layer 0's attention, so its
        // q, k and v are read forward only: they pack that layout alone and
        // keep their bits for the other (which nothing asks for).
        let forwardOnly = [ProjectionKind.q, .k, .v].compactMap { model.bf16Projections?.first?[$0] }.map(ObjectIdentifier.init)
        let matrices = (model.bf16Projections ?? []).flatMap(\.values) + [model.bf16HeadCopy(context: ctx)]
        func holding() -> Int { matrices.filter(\.holdsPlainBits).count }
        if MatmulEngine.hasBF16Kernels {
            let read = matrices.filter { !forwardOnly.contains(ObjectIdentifier($0)) }
            #expect(forwardOnly.count == 3 && read.filter(\.holdsPlainBits).isEmpty,
                    "\(read.filter(\.holdsPlainBits).count) of \(read.count) bf16 matrices read both ways kept their plain bits after a step")
        } else {
            #expect(holding() == matrices.count)
            print("note: no bf16 kernels on \(CPUFeatures.modelName): checked that every bf16 matrix keeps its plain bits")
        }
        let after = (logits(rows: 1), logits(rows: 18))
        let unchanged = after.0 == before.0 && after.1 == before.1
        #expect(unchanged, "the frozen network's logits changed once the bits were released")
        if MatmulEngine.hasBF16Kernels {
            #expect(holding() <= forwardOnly.count, "\(holding()) bf16 matrices made their plain bits again for a forward of few rows")
        }
    }

    /// An adapter method in f32 multiplies by packed copies of the model's
    /// Float32 base: the forward's layout on its first product, the
    /// backward's on the first step (none on AVX2, where that layout is the
    /// base as stored: `storedLayoutIsNotCopied`), made once and shared by
    /// every trial on the model; its logits agree with the plain base's.
    @Test func frozenF32BasesArePackedOncePerDirection() throws {
        try #require(MatmulEngine.current == .oneDNN, "f32 products are not on oneDNN (FACTSWEEP_MATMUL, libdnnl-dev)")
        let config = TinyModels.config()
        try #require(LlamaModel.packsFrozenBases(config), "FACTSWEEP_PACK_F32_BASES=off is set")
        let model = TinyModels.model(config)
        let ctx = ComputeContext(threads: 2)
        // Two sequences of decodingFewRowsLimit / 2 + 6: more rows than inference's few-rows kernel takes, so the products are `gemm`s.
        let b = TinyModels.batch(vocab: config.vocabularySize, seqLen: decodingFewRowsLimit / 2 + 6)
        #expect(b.batchSize * b.seqLen > decodingFewRowsLimit)
        let rows = Array(0..<(b.batchSize * b.seqLen))
        func packedBytes() -> Int { model.packedCopyBytes }
        #expect(packedBytes() == 0)
        let stored = model.baseWeightBytes

        let frozen = model.frozenNetwork(context: ctx)
        let plain = model.network(weights: model.weights, grads: nil, adapters: { _, _ in nil })
        let acts = LlamaActivations(network: frozen, maxBatch: b.batchSize, maxSeq: b.seqLen, threads: ctx.threads)
        let viaPacked = frozen.logits(b, outputRows: rows, acts, context: ctx)
        let forwardBytes = packedBytes()
        #expect(forwardBytes >= LlamaModel.projectionBytes(config), "the forward's products made no packed copies")
        let V = config.vocabularySize, C = config.hiddenSize
        let headForwardBytes = model.frozenHeadPack?.byteCount ?? 0
        #expect(headForwardBytes >= 4 * V * C, "the head's forward product made no packed copy")
        let viaPlain = plain.logits(b, outputRows: rows, acts, context: ctx)
        #expect(packedBytes() == forwardBytes, "the plain network packed")
        #expect(FewRowsProductTests.relativeError(viaPacked, viaPlain) < 1e-5)

        // A LoRA step runs the backward's input-gradient products too.
        let method = MethodSettings(kind: .lora, rank: 4, alpha: 8, dropout: 0, targets: ProjectionKind.allCases)
        func step() throws -> Float {
            let trial = try FineTuning(base: model, method: method, optimizer: AdamWSettings(), maxBatch: b.batchSize, maxSeq: b.seqLen,
                                       seed: 3, context: ctx)
            #expect(trial.network.lmHeadPacked != nil, "the trial's network lost the packed head")
            return trial.step(b, lr: 1e-3).loss
        }
        let first = try step()
        if OneDNNMatmul.hasAVX2Sgemm {
            // oneDNN's AVX2 matmul wants dY·W's W in plain rows, as stored: read in place, no second copy.
            #expect(packedBytes() == forwardBytes, "the backward copied a base whose layout is already the one asked for")
        } else {
            #expect(packedBytes() > forwardBytes, "the backward's products made no packed copies")
            // The fused head (FusedHead.swift) reads the head's plain rows: no product over a copy of it in training.
            #expect(!fusedHead.isOn || (model.frozenHeadPack?.byteCount ?? 0) == headForwardBytes, "the fused head's step packed the head")
            _ = try fusedHead.withoutIt { try step() }
            #expect((model.frozenHeadPack?.byteCount ?? 0) > headForwardBytes, "the head's input gradient made no packed copy")
        }
        let bothBytes = packedBytes()
        // Full fine-tuning trains the (tied) head: its network must read the weights, never a copy made before an update.
        let full = try FineTuning(base: model, method: MethodSettings(kind: .full), optimizer: AdamWSettings(), maxBatch: b.batchSize,
                                  maxSeq: b.seqLen, seed: 3, context: ctx)
        #expect(full.network.lmHeadPacked == nil && full.network.layers.allSatisfy { layer in
            layer.projections.allSatisfy { if case .dense(_, _, _, nil) = $0.weight { true } else { false } }
        })
        // A second trial on the same model reuses them, and computes the same.
        #expect(try step() == first)
        #expect(packedBytes() == bothBytes)
        #expect(model.baseWeightBytes == stored, "the packed copies are counted as stored base weights")

        // A write through `tensor(_:)` (the tied head is the embedding) makes every copy stale: the next products pack it again.
        let embedding = model.tensor("model.embed_tokens.weight")
        for i in stride(from: 0, to: embedding.count, by: 7) { embedding[i] += 0.25 }
        let changedPacked = frozen.logits(b, outputRows: rows, acts, context: ctx)
        let changedPlain = plain.logits(b, outputRows: rows, acts, context: ctx)
        #expect(FewRowsProductTests.relativeError(changedPacked, changedPlain) < 1e-5, "a packed head was read stale")
        #expect(FewRowsProductTests.relativeError(changedPacked, viaPacked) > 1e-3, "the write did not change the logits")
    }

    /// The bf16 head a model shares among its bf16 networks is rounded (and
    /// packed) again after a write through `tensor(_:)`: a network made
    /// before the write and one made after both compute what a model loaded
    /// with the written weights computes.
    @Test(arguments: [false, true])
    func sharedBF16HeadFollowsAWrite(tied: Bool) throws {
        let config = TinyModels.config(tied: tied)
        let model = TinyModels.model(config), written = TinyModels.model(config)
        let ctx = ComputeContext(threads: 2)
        // More rows than decoding's few-rows kernel takes: the head's product is a `gemm` (packed where bf16 kernels are).
        let b = TinyModels.batch(vocab: config.vocabularySize, seqLen: decodingFewRowsLimit / 2 + 6)
        let rows = Array(0..<(b.batchSize * b.seqLen))
        let before = model.frozenNetwork(precision: .bf16, context: ctx)
        let acts = LlamaActivations(network: before, maxBatch: b.batchSize, maxSeq: b.seqLen, threads: ctx.threads)
        func logits(_ network: LlamaNetwork) -> [Float] {
            ProductPrecision.run(.bf16) { network.logits(b, outputRows: rows, acts, context: ctx) }
        }
        let original = logits(before)

        let head = tied ? "model.embed_tokens.weight" : "lm_head.weight"
        for target in [model, written] {
            let values = target.tensor(head)
            for i in stride(from: 0, to: values.count, by: 7) { values[i] += 0.25 }
        }
        let expected = logits(written.frozenNetwork(precision: .bf16, context: ctx))
        let after = model.frozenNetwork(precision: .bf16, context: ctx)
        #expect(FewRowsProductTests.relativeError(expected, original) > 1e-3, "the write did not change the logits")
        #expect(FewRowsProductTests.relativeError(logits(before), expected) < 1e-6, "a network made before the write read a stale bf16 head")
        #expect(FewRowsProductTests.relativeError(logits(after), expected) < 1e-6, "a network made after the write read a stale bf16 head")
    }
}

