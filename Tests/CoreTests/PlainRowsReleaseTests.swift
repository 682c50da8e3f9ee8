// PlainRowsReleaseTests: a model's frozen Float32 projections let their plain
// rows go once both directions' packed copies exist, compute the same
// products from the copies alone, and write the rows back, exactly, for
// whatever still reads them (a product no copy serves, full fine-tuning's
// copy of the base, a merged export, a write through `tensor(_:)`).
import Foundation
import Testing
@testable import Core
import Trial
import TestSupport

#if canImport(Glibc)
import Glibc
#endif

@Suite struct PlainRowsReleaseTests {
    /// Large enough that the model's arena is mapped by `LargeBuffer` (over
    /// 2 MiB) and each projection holds whole pages; small enough to train
    /// in milliseconds.
    static let config = LlamaConfiguration(
        vocabularySize: 300, hiddenSize: 256, intermediateSize: 512, layerCount: 2, headCount: 4, kvHeadCount: 2,
        headDimension: nil, rmsNormEps: 1e-5, ropeTheta: 10000, ropeScaling: .none, tieWordEmbeddings: true, maxPositions: 64)

    /// Two sequences of 24: more rows than the few-rows limits, so the first
    /// step's products make both directions' copies.
    static func batch() -> TokenBatch { TinyModels.batch(vocab: config.vocabularySize, seqLen: 24) }

    static let lora = MethodSettings(kind: .lora, rank: 4, alpha: 8, dropout: 0, targets: ProjectionKind.allCases)

    /// Fails the test where nothing can be released: no oneDNN, the process
    /// on OpenBLAS, reuse or packing or the release turned off, buffers not
    /// mapped, or oneDNN's AVX2 matmul (whose backward reads the base in
    /// place, so no second copy exists to release beside).
    static func requireRelease() throws {
        try #require(OneDNNMatmul.isAvailable, "oneDNN's CPU engine could not be created (libdnnl-dev, scripts/setup.sh)")
        try #require(MatmulEngine.current == .oneDNN, "the process's engine is \(MatmulEngine.current), not oneDNN")
        try #require(OneDNNMatmul.reuse, "\(OneDNNMatmul.reuseEnvironmentKey)=off is set: no packed copies are made")
        try #require(LlamaModel.packsFrozenBases(config), "FACTSWEEP_PACK_F32_BASES=off is set")
        try #require(ReleasablePlainRows.releases, "\(ReleasablePlainRows.environmentKey)=off is set")
        try #require(LargeBuffer.usesHugePages, "FACTSWEEP_HUGE_PAGES=off is set: arenas are not mapped, so rows are not released")
        try #require(!OneDNNMatmul.hasAVX2Sgemm, "oneDNN's matmul is its AVX2 one here (\(CPUFeatures.modelName)): no backward copy")
    }

    /// Every projection's packed copies, layer by layer.
    static func packs(_ model: LlamaModel) -> [PackedWeight] {
        (0..<config.layerCount).flatMap { l in ProjectionKind.allCases.compactMap { model.frozenPack(layer: l, $0) } }
    }

    /// Whether every projection's rows are released now but layer 0's q, k
    /// and v: nothing reads their input's gradient, so they are only
    /// multiplied forward, and keep their rows beside that one copy.
    static func allReleased(_ model: LlamaModel) -> Bool {
        let packs = packs(model), both = packs.filter { $0.holdsBothDirections(float32: true) }
        return both.count == packs.count - 3 && both.allSatisfy { $0.plainRows?.isReleased ?? false }
    }

    /// Whether any page inside `pages`' span is resident (mincore).
    static func anyResident(_ rows: ReleasablePlainRows) -> Bool {
        let base = UInt(bitPattern: rows.rows), lo = (base + 4095) & ~UInt(4095), hi = (base + UInt(4 * rows.count)) & ~UInt(4095)
        guard hi > lo, let start = UnsafeMutableRawPointer(bitPattern: lo) else { return false }
        var residency = [UInt8](repeating: 0, count: Int(hi - lo) / 4096)
        return mincore(start, Int(hi - lo), &residency) == 0 && residency.contains { $0 & 1 != 0 }
    }

    /// The projections' Floats as the model holds them now (each under a lease), layer by layer.
    static func projections(_ model: LlamaModel) -> [[Float]] {
        (0..<config.layerCount).flatMap { l in
            ProjectionKind.allCases.compactMap { kind in
                model.layout[ParameterLayout.name(layer: l, kind)].map { e in
                    model.withPlainRows(of: e) { Array(UnsafeBufferPointer(start: $0, count: e.count)) }
                }
            }
        }
    }

    /// A LoRA trial's losses over three steps on `model`.
    static func losses(_ model: LlamaModel, context: ComputeContext) throws -> [Float] {
        let trial = try FineTuning(base: model, method: lora, optimizer: AdamWSettings(), maxBatch: 2, maxSeq: 24, seed: 3, context: context)
        return (0..<3).map { _ in trial.step(batch(), lr: 1e-3).loss }
    }

    /// The first step packs both directions and releases every projection's
    /// pages (none left resident); later steps and trials read the copies
    /// alone and compute exactly what a twin model that keeps its rows
    /// computes.
    @Test func adapterStepsReleaseTheRowsAndComputeTheSame() throws {
        try Self.requireRelease()
        let context = ComputeContext(threads: 2)
        let model = TinyModels.model(Self.config), twin = TinyModels.model(Self.config)
        #expect(Self.packs(model).allSatisfy { $0.plainRows != nil }, "a projection's copies cannot release its rows")
        let original = Self.projections(model)
        let released = try Self.losses(model, context: context)
        #expect(Self.allReleased(model), "a projection kept its plain rows")
        #expect(!Self.packs(model).contains { $0.plainRows.map { $0.isReleased && Self.anyResident($0) } ?? true },
                "released pages are still resident")
        let kept = try ReleasablePlainRows.release.withoutIt { try Self.losses(twin, context: context) }
        #expect(!Self.packs(twin).contains { $0.plainRows?.isReleased ?? true }, "the twin released its rows")
        #expect(released == kept, "the released model's losses differ from the twin's")
        #expect(try Self.losses(model, context: context) == kept, "a second trial on the released model computed otherwise")
        // A checkpoint's fingerprint of the base samples every tensor, the released projections too.
        #expect(model.fingerprint == twin.fingerprint)
        let writtenBack = Self.projections(model) == original
        #expect(writtenBack, "the rows written back differ from the weights loaded")
        #expect(Self.allReleased(model), "a lease kept the rows")
    }

    /// Decoding on a released model (few rows, read from the forward's copy)
    /// gives the twin's tokens; a product no copy serves (bf16 precision
    /// here) writes the rows back and keeps them.
    @Test func decodingReadsTheCopiesAndOtherProductsBringTheRowsBack() throws {
        try Self.requireRelease()
        let context = ComputeContext(threads: 2)
        let model = TinyModels.model(Self.config), twin = TinyModels.model(Self.config)
        _ = try Self.losses(model, context: context)
        try #require(Self.allReleased(model))
        _ = try ReleasablePlainRows.release.withoutIt { try Self.losses(twin, context: context) }
        let prompt: [Int32] = [5, 17, 42, 99, 7, 250, 3, 11, 64, 128, 200, 31]
        let tokens = model.frozenNetwork(context: context).generateGreedy(prompt: prompt, maxTokens: 12, context: context)
        #expect(Self.allReleased(model), "decoding brought the rows back")
        let expected = ReleasablePlainRows.release.withoutIt {
            twin.frozenNetwork(context: context).generateGreedy(prompt: prompt, maxTokens: 12, context: context)
        }
        #expect(tokens == expected, "decoding from the copies chose other tokens")
        // A product of no rows brings nothing back.
        let scratch = FloatArena(capacity: 16)
        for projection in model.frozenNetwork(context: context).layers[1].projections {
            projection.weight.multiply(out: FloatPointer(scratch.base), inp: FloatPointer(scratch.base), n: 0, context: context)
            projection.weight.multiplyTransposed(dinp: FloatPointer(scratch.base), dout: FloatPointer(scratch.base), n: 0, accumulate: false,
                                                 context: context)
        }
        #expect(Self.allReleased(model), "a product of no rows brought the rows back")

        let b = Self.batch(), rows = Array(0..<(b.batchSize * b.seqLen))
        let bf16Logits = ProductPrecision.run(.bf16) {
            let network = model.frozenNetwork(context: context)
            return network.logits(b, outputRows: rows, LlamaActivations(network: network, maxBatch: 2, maxSeq: 24, threads: 2), context: context)
        }
        let twinLogits = ProductPrecision.run(.bf16) {
            let network = twin.frozenNetwork(context: context)
            return network.logits(b, outputRows: rows, LlamaActivations(network: network, maxBatch: 2, maxSeq: 24, threads: 2), context: context)
        }
        let sameLogits = bf16Logits == twinLogits
        #expect(sameLogits, "the bf16 logits differ from the twin's")
        #expect(!Self.packs(model).contains { $0.plainRows?.isReleased ?? true }, "a product no copy serves left the rows released")
    }

    /// Full fine-tuning copies the base, a merged export reads it, and a
    /// write through `tensor(_:)` changes it: each sees the weights loaded
    /// (or written), and the rows are released again once both copies are
    /// current again.
    @Test func copiesExportsAndWritesSeeTheWeights() throws {
        try Self.requireRelease()
        let context = ComputeContext(threads: 2)
        let model = TinyModels.model(Self.config)
        let original = Self.projections(model)
        let trial = try FineTuning(base: model, method: Self.lora, optimizer: AdamWSettings(), maxBatch: 2, maxSeq: 24, seed: 3, context: context)
        _ = trial.step(Self.batch(), lr: 1e-3)
        try #require(Self.allReleased(model))

        let full = try FineTuning(base: model, method: MethodSettings(kind: .full), optimizer: AdamWSettings(), maxBatch: 2, maxSeq: 24,
                                  seed: 3, context: context)
        let copied = model.weights.layers.indices.flatMap { l in
            ProjectionKind.allCases.compactMap { kind in
                full.tensor(ParameterLayout.name(layer: l, kind)).map(Array.init)
            }
        }
        let copiedBase = copied == original
        #expect(copiedBase, "full fine-tuning copied other weights than the base's")
        #expect(Self.allReleased(model), "the copy left the rows in memory")

        // LoRA's B starts at zero: a fresh trial's merged projections are the base's.
        let fresh = try FineTuning(base: model, method: Self.lora, optimizer: AdamWSettings(), maxBatch: 2, maxSeq: 24, seed: 4, context: context)
        let merged = fresh.mergedParameters()
        let layout = ParameterLayout(config: Self.config)
        let exported = model.weights.layers.indices.flatMap { l in
            ProjectionKind.allCases.compactMap { kind in
                layout[ParameterLayout.name(layer: l, kind)].map { Array(UnsafeBufferPointer(start: merged.base + $0.offset, count: $0.count)) }
            }
        }
        let exportedBase = exported == original
        #expect(exportedBase, "the export read other weights than the base's")
        #expect(Self.allReleased(model), "the export left the rows in memory")

        let name = ParameterLayout.name(layer: 1, .down)
        let before = model.fingerprint
        let written = model.tensor(name)
        #expect(!Self.packs(model).contains { $0.plainRows?.isReleased ?? true }, "a write found rows released")
        for i in stride(from: 0, to: written.count, by: 5) { written[i] += 0.5 }
        let expected = written.map { $0 }
        #expect(model.fingerprint != before, "the fingerprint kept from before the write")
        _ = trial.step(Self.batch(), lr: 1e-3)
        #expect(Self.allReleased(model), "the rows were not released again after the copies were made again")
        let index = ProjectionKind.allCases.count + (ProjectionKind.allCases.firstIndex(of: .down) ?? 0)
        let keptWrite = Self.projections(model)[index] == expected
        #expect(keptWrite, "the rows written back are not the written weights")
        #expect(Self.allReleased(model), "a lease kept the rows")
    }

    /// Dropping the copies (a full fine-tuning trial about to hold the model
    /// alone) writes every released row back, exactly, frees every copy and
    /// the head's, and leaves a model on which the next adapter trial packs,
    /// releases and computes as before.
    @Test func droppingTheCopiesWritesTheRowsBackAndFreesThem() throws {
        try Self.requireRelease()
        let context = ComputeContext(threads: 2)
        let model = TinyModels.model(Self.config), twin = TinyModels.model(Self.config)
        let original = Self.projections(model)
        let kept = try ReleasablePlainRows.release.withoutIt { try Self.losses(twin, context: context) }
        #expect(try Self.losses(model, context: context) == kept)
        try #require(Self.allReleased(model))
        let held = model.packedCopyBytes
        try #require(held > 0)
        let releasedBytes = Self.packs(model).reduce(0) { $0 + ($1.plainRows.map { $0.isReleased ? 4 * $0.count : 0 } ?? 0) }
        #expect(model.heldBytes == model.baseWeightBytes + held - releasedBytes)
        let freed = model.dropFloat32Copies()
        #expect(freed == held, "freed \(freed) bytes of \(held)")
        #expect(model.heldBytes == model.baseWeightBytes, "the model holds \(model.heldBytes) bytes, its base \(model.baseWeightBytes)")
        #expect(model.packedCopyBytes == 0, "a copy survived")
        #expect(!Self.packs(model).contains { $0.plainRows?.isReleased ?? true }, "rows stayed released with no copy to hold them")
        // Read without a lease: the rows must be back in the arena itself.
        let inArena = (0..<Self.config.layerCount).flatMap { l in
            ProjectionKind.allCases.compactMap { kind in
                model.layout[ParameterLayout.name(layer: l, kind)].map {
                    Array(UnsafeBufferPointer(start: model.parameters.base + $0.offset, count: $0.count))
                }
            }
        }
        let writtenBack = inArena == original
        #expect(writtenBack, "the rows written back differ from the weights loaded")
        #expect(model.dropFloat32Copies() == 0, "a second drop found copies")
        #expect(try Self.losses(model, context: context) == kept, "a trial after the drop computed otherwise")
        #expect(Self.allReleased(model), "the next adapter trial did not release the rows again")
    }
}
