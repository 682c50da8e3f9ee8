// ModelCacheTests: a worker keeps idle models only within its budget, the
// least recently taken going first, never drops one a trial holds, and a
// full fine-tuning trial that holds its model alone frees the packed copies
// the adapter trials before it made.
import Core
import Foundation
import Testing
import TestSupport
import Trial
@testable import Worker

@Suite struct ModelCacheTests {
    /// `count` tiny Llama checkpoints, each in its own directory (one model each).
    static func models(_ count: Int) throws -> [TemporaryDirectory] {
        try (0..<count).map { seed in
            let directory = try TemporaryDirectory()
            try TinyCheckpoints.llama3(in: directory.url, seed: UInt64(seed + 1))
            return directory
        }
    }

    static func key(_ directory: TemporaryDirectory) -> String { "float32:" + directory.url.standardizedFileURL.path }

    /// Takes `directory`'s model as a trial would, and lets it go again.
    @discardableResult
    static func take(_ cache: ModelCache, _ directory: TemporaryDirectory) throws -> LanguageModel {
        try cache.withLanguageModel(directory.url, storage: .float32, context: ComputeContext(threads: 1)) { model, _ in model }
    }

    @Test func idleModelsOverTheBudgetGoLeastRecentlyTakenFirst() throws {
        let models = try Self.models(3)
        let (a, b, c) = (models[0], models[1], models[2])
        let one = ModelCache.bytes(try Self.take(ModelCache(logger: CapturedLogs().logger("cache")), a))
        // One idle model fits the budget, two do not.
        let cache = ModelCache(logger: CapturedLogs().logger("cache"), idleBudget: one)
        weak var first = try Self.take(cache, a)
        try Self.take(cache, b)
        #expect(cache.cachedKeys == [Self.key(a), Self.key(b)].sorted(), "one idle model within the budget was dropped")
        try Self.take(cache, c)
        #expect(cache.cachedKeys == [Self.key(b), Self.key(c)].sorted(), "not the least recently taken idle model went")
        #expect(first == nil, "the dropped model is still in memory")
        #expect(!cache.loadedModels.contains(a.url.standardizedFileURL.path), "the worker would still say it holds the dropped model")
        // Taken again, b is more recent than c: a's return drops c, not b.
        try Self.take(cache, b)
        try Self.take(cache, a)
        #expect(cache.cachedKeys == [Self.key(a), Self.key(b)].sorted(), "the order of loading, not of taking, chose")
    }

    @Test func aModelATrialHoldsIsNeverDropped() throws {
        let models = try Self.models(2)
        let cache = ModelCache(logger: CapturedLogs().logger("cache"), idleBudget: 0)
        try cache.withLanguageModel(models[0].url, storage: .float32, context: ComputeContext(threads: 1)) { held, alone in
            #expect(alone)
            try Self.take(cache, models[1])
            #expect(cache.cachedKeys.contains(Self.key(models[0])), "a held model was dropped")
            let again = try cache.withLanguageModel(models[0].url, storage: .float32, context: ComputeContext(threads: 1)) { model, alone in
                #expect(!alone, "a second trial on a held model was told it holds it alone")
                return model
            }
            #expect(again === held, "a held model was loaded again")
        }
        // Idle now, and over a budget of nothing: the next trial's take drops it.
        try Self.take(cache, models[1])
        #expect(cache.cachedKeys == [Self.key(models[1])])
    }

    /// The tiny trial's settings with `kind`, on `directory`'s model.
    static func config(_ kind: MethodKind, model directory: TemporaryDirectory) throws -> TrialConfig {
        var config = try TinyTrial.config(epochs: 1)
        config.model = directory.url.path
        if kind == .full {
            config.training.method = MethodSettings(kind: .full)
            config.training.learningRate = 1e-5
        }
        return config
    }

    @Test func fullFineTuningAloneDropsTheAdapterTrialsCopies() throws {
        try #require(MatmulEngine.current == .oneDNN, "the process's engine is \(MatmulEngine.current), not oneDNN: no packed copies")
        let models = try Self.models(1)
        let logs = CapturedLogs()
        let runner = TrialRunner(cache: ModelCache(logger: logs.logger("cache")), context: ComputeContext(threads: 2),
                                 logger: logs.logger("runner"))
        func copyBytes() throws -> Int {
            try runner.cache.withLanguageModel(models[0].url, storage: .float32, context: runner.context) { model, _ in model.model.packedCopyBytes }
        }
        _ = try runner.run(try Self.config(.lora, model: models[0]), directory: nil, resume: false, events: TrialEvents())
        let made = try copyBytes()
        try #require(made > 0, "the LoRA trial made no packed copies of the base")

        // Another trial holding the model: its products may be reading the copies, so they stay.
        try runner.cache.withLanguageModel(models[0].url, storage: .float32, context: runner.context) { _, _ in
            let summary = try runner.run(try Self.config(.full, model: models[0]), directory: nil, resume: false, events: TrialEvents())
            #expect(summary.outcome == .done)
        }
        #expect(try copyBytes() == made, "copies another trial may read were dropped")

        let summary = try runner.run(try Self.config(.full, model: models[0]), directory: nil, resume: false, events: TrialEvents())
        #expect(summary.outcome == .done && summary.finalLoss?.isFinite == true)
        #expect(try copyBytes() == 0, "full fine-tuning kept the adapter trials' copies")
        #expect(logs.all.contains { $0.message.contains("dropped the base's packed copies") && $0.metadata["bytes"] == "\(made)" },
                "the drop was not logged with its bytes")

        // The next adapter trial makes them again.
        _ = try runner.run(try Self.config(.lora, model: models[0]), directory: nil, resume: false, events: TrialEvents())
        #expect(try copyBytes() == made)
    }
}
