// Checkpoints: a run interrupted and resumed reproduces the uninterrupted run
// exactly (same per-epoch losses and final tensors at the same thread count),
// for every method; bad or mismatched checkpoints are refused clearly.
import Foundation
import Testing
@testable import Core
import TestSupport
import Trial

@Suite(.serialized) struct CheckpointTests {
    static let shared: Result<(TemporaryDirectory, LanguageModel, FactDataset), Error> = Result {
        let dir = try TemporaryDirectory()
        try TinyCheckpoints.llama3(in: dir.url)
        let model = try LanguageModel.load(dir.url)
        let dataset = try FactDataset.load(TestPaths.repositoryRoot.appendingPathComponent("data/biography.jsonl"))
        return (dir, model, dataset)
    }

    static func settings(_ method: MethodSettings) -> TrainingSettings {
        var s = TrainingSettings()
        s.method = method
        s.learningRate = 1e-3
        s.epochs = 6
        s.batchSize = 2
        s.seed = 5
        s.warmupSteps = 3
        s.decay = .cosine
        return s
    }

    /// Each method, full fine-tuning again with bf16 AdamW moments (stored
    /// as BF16 bits), and bf16 products: full fine-tuning (its weights'
    /// roundings made again after the restore) and LoRA on a bf16 base.
    static let methods: [(MethodSettings, moments: Precision?, precision: Precision)] = [
        (MethodSettings(kind: .full), nil, .f32),
        (MethodSettings(kind: .lora, rank: 4, alpha: 8, dropout: 0.1), nil, .f32),
        (MethodSettings(kind: .ia3), nil, .f32),
        (MethodSettings(kind: .full), .bf16, .f32),
        (MethodSettings(kind: .qlora, rank: 4, alpha: 8), nil, .f32),
        (MethodSettings(kind: .full), nil, .bf16),
        (MethodSettings(kind: .lora, rank: 4, alpha: 8), nil, .bf16),
    ]

    /// The moments' values as Floats, whichever their storage.
    static func momentValues(_ optimizer: AdamW) -> [Float] {
        optimizer.settings.momentPrecision == .bf16 ? optimizer.momentBits.map(floatFromBFloat16) : Array(optimizer.moments.buffer)
    }

    @Test(arguments: 0..<7)
    func resumedRunEqualsUninterruptedRun(index: Int) throws {
        let (dir, loaded, dataset) = try Self.shared.get()
        let ctx = ComputeContext(threads: 2)
        var settings = Self.settings(Self.methods[index].0)
        settings.optimizer.moments = Self.methods[index].moments
        settings.precision = Self.methods[index].precision == .bf16 ? .bf16 : nil
        let storage = LinearStorage.training(settings.method.kind, precision: settings.productPrecision)
        let model = storage == .float32 ? loaded : try LanguageModel.load(dir.url, storage: storage, context: ctx)
        let straight = try TrainingRun(model: model, dataset: dataset, settings: settings, context: ctx)
        try straight.run { _ in .more }

        let tmp = try TemporaryDirectory()
        let first = try TrainingRun(model: model, dataset: dataset, settings: settings, context: ctx)
        try first.run { $0.epoch == 3 ? .stop : .more }
        try first.saveCheckpoint(to: tmp.url)
        let resumed = try TrainingRun(resuming: tmp.url, model: model, dataset: dataset, context: ctx)
        #expect(resumed.completedEpochs == 3)
        try resumed.run { _ in .more }

        // Bit for bit in a worker process (one trial, nothing else in the process). Here other suites train
        // on the same threads at the same time and change process-wide state under this test (OpenBLAS's
        // thread count in their single-threaded sections), which can move the last bits of a sum, and AdamW's
        // division by sqrt(v) magnifies that (LlamaGoldenTests allows 2e-4 for the same reason). So exact
        // equality is reported, and the test requires the losses to agree to 1e-5 relative and the
        // parameters and moments to 2e-4: a resume that restored the wrong step, learning-rate position,
        // dropout stream or optimizer state differs by far more.
        let losses = (resumed.reports.map { Float($0.loss) }, straight.reports.map { Float($0.loss) })
        let parameters = (Array(resumed.trainer.parameters.buffer), Array(straight.trainer.parameters.buffer))
        let moments = (Self.momentValues(resumed.trainer.optimizer), Self.momentValues(straight.trainer.optimizer))
        #expect(losses.0.count == losses.1.count && parameters.0.count == parameters.1.count && moments.0.count == moments.1.count)
        guard losses.0.count == losses.1.count, parameters.0.count == parameters.1.count, moments.0.count == moments.1.count else { return }
        let exact = [firstDifference(losses.0, losses.1), firstDifference(parameters.0, parameters.1), firstDifference(moments.0, moments.1)]
        if exact.contains(where: { $0 != nil }) {
            print("resume \(settings.method.kind) \(settings.productPrecision) (\(settings.optimizer.momentPrecision) moments): not bit-identical (losses, parameters, moments): \(exact.map { $0 ?? "equal" })")
        }
        let lossDifference = maxRelativeDifference(losses.0, losses.1)
        let stateDifference = max(zip(parameters.0, parameters.1).reduce(Float(0)) { max($0, abs($1.0 - $1.1)) },
                                  zip(moments.0, moments.1).reduce(Float(0)) { max($0, abs($1.0 - $1.1)) })
        #expect(lossDifference <= 1e-5 && stateDifference <= 2e-4,
                "\(settings.method.kind) \(settings.productPrecision) (\(settings.optimizer.momentPrecision) moments): losses differ by \(lossDifference) relative, parameters or moments by \(stateDifference)")
        print("resume \(settings.method.kind): losses \(straight.reports.map(\.loss))")
    }

    @Test func mismatchedOrCorruptCheckpointsAreRefused() throws {
        let (_, model, dataset) = try Self.shared.get()
        let ctx = ComputeContext(threads: 1)
        let tmp = try TemporaryDirectory()
        var settings = Self.settings(MethodSettings(kind: .ia3))
        settings.epochs = 1
        let run = try TrainingRun(model: model, dataset: dataset, settings: settings, context: ctx)
        try run.run { _ in .more }
        try run.saveCheckpoint(to: tmp.url)
        let file = tmp.url.appendingPathComponent(TrainingCheckpoint.fileName)

        // Another base model (different weights, same shape).
        let otherDir = try TemporaryDirectory()
        try TinyCheckpoints.llama3(in: otherDir.url, seed: 2)
        let other = try LanguageModel.load(otherDir.url)
        #expect { try TrainingRun(resuming: tmp.url, model: other, dataset: dataset, context: ctx) } throws: { error in
            "\(error)".contains("another base model") && "\(error)".contains(file.path)
        }
        // Truncated file.
        let bytes = try Data(contentsOf: file)
        try bytes.prefix(bytes.count / 2).write(to: file)
        #expect { try TrainingRun(resuming: tmp.url, model: model, dataset: dataset, context: ctx) } throws: { error in
            "\(error)".contains(file.path)
        }
        // A safetensors file that is not a checkpoint.
        var writer = SafetensorsWriter()
        try writer.add("x", shape: [1], [Float(1)])
        try writer.write(to: file)
        #expect { try TrainingRun(resuming: tmp.url, model: model, dataset: dataset, context: ctx) } throws: { error in
            "\(error)".contains("not a FactSweep checkpoint")
        }
        // A future format version.
        var state = TrainingCheckpoint.State(
            magic: TrainingCheckpoint.magic, version: 99, settings: settings, modelFingerprint: "", completedEpochs: 0, steps: 0,
            optimizerStep: 0, orderRNG: SeededGenerator(seed: 1), dropoutRNG: SeededGenerator(seed: 1), trainSeconds: 0, reports: [], tensors: [])
        try TrainingCheckpoint.write(state, parameters: FloatArena(capacity: 1), moments: FloatArena(capacity: 2), to: tmp.url)
        #expect { try TrainingRun(resuming: tmp.url, model: model, dataset: dataset, context: ctx) } throws: { error in
            "\(error)".contains("version 99")
        }
        state.version = TrainingCheckpoint.version
        state.magic = "something-else"
        try TrainingCheckpoint.write(state, parameters: FloatArena(capacity: 1), moments: FloatArena(capacity: 2), to: tmp.url)
        #expect { try TrainingRun(resuming: tmp.url, model: model, dataset: dataset, context: ctx) } throws: { error in
            "\(error)".contains("wrong magic")
        }
    }

    /// A resumed run lays its batches as the checkpointed run did (the
    /// shared prompt prefix once, or every example whole), whatever the
    /// resuming process's default: the two layouts sum in different orders.
    /// Seen in the epoch's FLOPs, which the shared prefix lowers.
    @Test func aResumedRunLaysItsBatchesAsItsCheckpointSays() throws {
        let (_, model, dataset) = try Self.shared.get()
        let ctx = ComputeContext(threads: 1)
        var settings = Self.settings(MethodSettings(kind: .lora, rank: 2))
        settings.epochs = 2
        for writtenShared in [true, false] {
            let tmp = try TemporaryDirectory()
            func written<T>(_ body: () throws -> T) rethrows -> T {
                writtenShared ? try body() : try FineTuning.promptPrefix.withoutIt(body)
            }
            func resumedElsewhere<T>(_ body: () throws -> T) rethrows -> T {
                writtenShared ? try FineTuning.promptPrefix.withoutIt(body) : try body()
            }
            let straight = try written { try TrainingRun(model: model, dataset: dataset, settings: settings, context: ctx) }
            try straight.run { _ in .more }
            let first = try written { try TrainingRun(model: model, dataset: dataset, settings: settings, context: ctx) }
            try first.run { _ in .stop }
            try first.saveCheckpoint(to: tmp.url)
            #expect(first.sharesPromptPrefix == writtenShared)
            #expect(try TrainingCheckpoint.read(tmp.url).0.sharedPromptPrefix == writtenShared)
            // Resumed where the default is the other layout, and beside it a run started there.
            let resumed = try resumedElsewhere { try TrainingRun(resuming: tmp.url, model: model, dataset: dataset, context: ctx) }
            let other = try resumedElsewhere { try TrainingRun(model: model, dataset: dataset, settings: settings, context: ctx) }
            #expect(resumed.sharesPromptPrefix == writtenShared && other.sharesPromptPrefix != writtenShared)
            try resumed.run { _ in .more }
            try other.run { _ in .more }
            let flops = (resumed.reports[1].flops, straight.reports[1].flops, other.reports[1].flops)
            #expect(flops.0 == flops.1 && flops.1 != flops.2,
                    "epoch 2: \(flops.0) FLOPs resumed, \(flops.1) straight, \(flops.2) in the other layout")
        }
        // A checkpoint of a run under LoRA dropout that claims a shared prefix is refused.
        settings.method.dropout = 0.1
        let tmp = try TemporaryDirectory()
        let run = try TrainingRun(model: model, dataset: dataset, settings: settings, context: ctx)
        try run.run { _ in .stop }
        try run.saveCheckpoint(to: tmp.url)
        var state = try TrainingCheckpoint.read(tmp.url).0
        #expect(state.sharedPromptPrefix == false)
        state.sharedPromptPrefix = true
        try TrainingCheckpoint.write(state, parameters: run.trainer.parameters, moments: run.trainer.optimizer.moments, to: tmp.url)
        #expect { try TrainingRun(resuming: tmp.url, model: model, dataset: dataset, context: ctx) } throws: { error in
            "\(error)".contains("LoRA dropout") && "\(error)".contains(TrainingCheckpoint.fileName)
        }
    }
}
