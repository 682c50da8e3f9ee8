// ModelCacheTests: a worker keeps idle models only within its budget, the
// least recently taken going first, never drops one a trial holds, and a
// full fine-tuning trial that holds its model alone frees the packed copies
// the adapter trials before it made.
import Core
import Foundation
import Protocol
import Synchronization
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
        try cache.withLanguageModel(directory.url, storage: .float32, context: ComputeContext(threads: 1)) { $0 }
    }

    @Test func idleModelsOverTheBudgetGoLeastRecentlyTakenFirst() throws {
        let models = try Self.models(3)
        let (a, b, c) = (models[0], models[1], models[2])
        let one = try Self.take(ModelCache(logger: CapturedLogs().logger("cache")), a).model.heldBytes
        // One idle model fits the budget, two do not.
        let cache = ModelCache(logger: CapturedLogs().logger("cache"), idleBudget: one)
        weak var first = try Self.take(cache, a)
        try Self.take(cache, b)
        #expect(cache.cachedKeys == [Self.key(a), Self.key(b)].sorted(), "one idle model within the budget was dropped")
        try Self.take(cache, c)
        #expect(cache.cachedKeys == [Self.key(b), Self.key(c)].sorted(), "not the least recently taken idle model went")
        #expect(first == nil, "the dropped model is still in memory")
        #expect(!cache.modelsOnHand.map(\.model).contains(a.url.standardizedFileURL.path),
                "the worker would still say it holds the dropped model")
        // Taken again, b is more recent than c: a's return drops c, not b.
        try Self.take(cache, b)
        try Self.take(cache, a)
        #expect(cache.cachedKeys == [Self.key(a), Self.key(b)].sorted(), "the order of loading, not of taking, chose")
    }

    /// One file in two storages: each is listed, with its storage, from its load to its drop, and the
    /// other stays listed when one goes.
    @Test func theModelsOnHandNameTheirStorages() throws {
        let model = try Self.models(1)[0]
        let path = model.url.standardizedFileURL.path
        let context = ComputeContext(threads: 1)
        let keeping = ModelCache(logger: CapturedLogs().logger("cache"), idleBudget: .max)
        try Self.take(keeping, model)
        #expect(keeping.modelsOnHand == [.init(model: path, storage: .float32)])
        try keeping.withLanguageModel(model.url, storage: .bf16, context: context) { _ in }
        #expect(keeping.modelsOnHand == [.init(model: path, storage: .bf16), .init(model: path, storage: .float32)])

        let dropping = ModelCache(logger: CapturedLogs().logger("cache"), idleBudget: 0)
        try Self.take(dropping, model)
        try dropping.withLanguageModel(model.url, storage: .bf16, context: context) { _ in
            #expect(dropping.modelsOnHand == [.init(model: path, storage: .bf16)], "the idle Float32 model, over the budget, went")
        }
        try Self.take(dropping, model)
        #expect(dropping.modelsOnHand == [.init(model: path, storage: .float32)])
    }

    @Test func aModelATrialHoldsIsNeverDropped() throws {
        let models = try Self.models(2)
        let cache = ModelCache(logger: CapturedLogs().logger("cache"), idleBudget: 0)
        let alone = Mutex(0)
        try cache.withLanguageModel(models[0].url, storage: .float32, context: ComputeContext(threads: 1),
                                    whenAlone: { _ in alone.withLock { $0 += 1 } }) { held in
            #expect(alone.withLock { $0 } == 1, "the first trial on the model was not told it holds it alone")
            try Self.take(cache, models[1])
            #expect(cache.cachedKeys.contains(Self.key(models[0])), "a held model was dropped")
            let again = try cache.withLanguageModel(models[0].url, storage: .float32, context: ComputeContext(threads: 1),
                                                    whenAlone: { _ in alone.withLock { $0 += 1 } }) { $0 }
            #expect(alone.withLock { $0 } == 1, "a second trial on a held model was told it holds it alone")
            #expect(again === held, "a held model was loaded again")
        }
        // Idle now, and over a budget of nothing: the next trial's take drops it.
        try Self.take(cache, models[1])
        #expect(cache.cachedKeys == [Self.key(models[1])])
        // Taken again, it is loaded again, alone.
        try cache.withLanguageModel(models[0].url, storage: .float32, context: ComputeContext(threads: 1),
                                    whenAlone: { _ in alone.withLock { $0 += 1 } }) { _ in }
        #expect(alone.withLock { $0 } == 2)
        // The directories are removed when released: not before the load above has read them.
        withExtendedLifetime(models) {}
    }

    /// `whenAlone` runs under the cache's lock: a second trial taking the
    /// same model waits until it has returned, and is not alone.
    @Test func aSecondTrialWaitsForWhenAlone() throws {
        let models = try Self.models(1)
        let cache = ModelCache(logger: CapturedLogs().logger("cache"))
        let inWhenAlone = DispatchSemaphore(value: 0), finishWhenAlone = DispatchSemaphore(value: 0)
        let secondEntered = DispatchSemaphore(value: 0), done = DispatchGroup()
        let entered = Mutex(false), calls = Mutex(0), failures = Mutex<[String]>([])
        let url = models[0].url
        done.enter()
        Thread.detachNewThread {
            defer { done.leave() }
            do {
                try cache.withLanguageModel(url, storage: .float32, context: ComputeContext(threads: 1), whenAlone: { _ in
                    calls.withLock { $0 += 1 }
                    inWhenAlone.signal()
                    finishWhenAlone.wait()
                }) { _ in
                    // Hold the model until the second trial has it: that one is then never alone.
                    _ = secondEntered.wait(timeout: .now() + 30)
                }
            } catch { failures.withLock { $0.append("first: \(error)") } }
        }
        inWhenAlone.wait()
        done.enter()
        Thread.detachNewThread {
            defer { done.leave() }
            do {
                try cache.withLanguageModel(url, storage: .float32, context: ComputeContext(threads: 1),
                                            whenAlone: { _ in calls.withLock { $0 += 1 } }) { _ in
                    entered.withLock { $0 = true }
                    secondEntered.signal()
                }
            } catch { failures.withLock { $0.append("second: \(error)") } }
        }
        Thread.sleep(forTimeInterval: 0.5)
        #expect(!entered.withLock { $0 }, "a second trial ran on the model while the first's whenAlone ran")
        finishWhenAlone.signal()
        #expect(done.wait(timeout: .now() + 30) == .success)
        #expect(entered.withLock { $0 })
        #expect(calls.withLock { $0 } == 1, "the second trial, which took a held model, was told it holds it alone")
        #expect(failures.withLock { $0 }.isEmpty, "\(failures.withLock { $0 })")
        withExtendedLifetime(models) {}
    }

    /// A trial that throws lets its model go; a model that cannot be found
    /// drops nothing.
    @Test func aFailedTrialLetsGoAndAMissingModelDropsNothing() throws {
        let models = try Self.models(2)
        let cache = ModelCache(logger: CapturedLogs().logger("cache"), idleBudget: 0)
        struct Failure: Error {}
        #expect(throws: Failure.self) {
            try cache.withLanguageModel(models[0].url, storage: .float32, context: ComputeContext(threads: 1)) { _ in throw Failure() }
        }
        let missing = models[1].url.appendingPathComponent("nothing-here")
        #expect(throws: LoadError.self) { try cache.withLanguageModel(missing, storage: .float32, context: ComputeContext(threads: 1)) { _ in } }
        #expect(cache.cachedKeys == [Self.key(models[0])], "a model that could not be found dropped the idle one")
        try Self.take(cache, models[1])
        #expect(cache.cachedKeys == [Self.key(models[1])], "the failed trial still holds its model")
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
            try runner.cache.withLanguageModel(models[0].url, storage: .float32, context: runner.context) { $0.model.packedCopyBytes }
        }
        _ = try runner.run(try Self.config(.lora, model: models[0]), directory: nil, resume: false, events: TrialEvents())
        let made = try copyBytes()
        try #require(made > 0, "the LoRA trial made no packed copies of the base")

        // Another trial holding the model: its products may be reading the copies, so they stay.
        try runner.cache.withLanguageModel(models[0].url, storage: .float32, context: runner.context) { _ in
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

    /// The budget weighs what a model holds now, its packed copies too: after
    /// an adapter trial a model that fitted the budget alone no longer does.
    @Test func theBudgetWeighsThePackedCopies() throws {
        try #require(MatmulEngine.current == .oneDNN, "the process's engine is \(MatmulEngine.current), not oneDNN: no packed copies")
        let models = try Self.models(2)
        let base = try Self.take(ModelCache(logger: CapturedLogs().logger("cache")), models[0]).model.heldBytes
        let runner = TrialRunner(cache: ModelCache(logger: CapturedLogs().logger("cache"), idleBudget: base), context: ComputeContext(threads: 2),
                                 logger: CapturedLogs().logger("runner"))
        try Self.take(runner.cache, models[1])
        try Self.take(runner.cache, models[0])
        #expect(runner.cache.cachedKeys == [Self.key(models[0]), Self.key(models[1])].sorted(), "a model without copies did not fit")
        _ = try runner.run(try Self.config(.lora, model: models[0]), directory: nil, resume: false, events: TrialEvents())
        let held = try runner.cache.withLanguageModel(models[0].url, storage: .float32, context: runner.context) { $0.model.heldBytes }
        try #require(held > base, "the LoRA trial made no packed copies (\(held) bytes held, \(base) without)")
        try Self.take(runner.cache, models[1])
        #expect(runner.cache.cachedKeys == [Self.key(models[1])], "the model with its copies was kept over the budget")
    }
}

/// The memory limit a worker's default budget starts from.
@Suite struct MemoryLimitTests {
    /// A scratch tree shaped like /sys/fs/cgroup and a /proc/self/cgroup naming `path`.
    static func tree(v2 path: String? = nil, v1 path1: String? = nil, files: [String: String]) throws -> TemporaryDirectory {
        let directory = try TemporaryDirectory()
        var lines: [String] = []
        if let path { lines.append("0::\(path)") }
        if let path1 { lines.append("4:cpu,memory:\(path1)") }
        try lines.joined(separator: "\n").write(to: directory.url.appendingPathComponent("proc-cgroup"), atomically: true, encoding: .utf8)
        for (name, text) in files {
            let file = directory.url.appendingPathComponent("root" + name)
            try FileManager.default.createDirectory(at: file.deletingLastPathComponent(), withIntermediateDirectories: true)
            try text.write(to: file, atomically: true, encoding: .utf8)
        }
        return directory
    }

    static func limit(_ directory: TemporaryDirectory, environment: [String: String] = [:]) -> (bytes: UInt64, own: Bool) {
        MemoryLimit.bytes(physical: 24 << 30, environment: environment, procCgroup: directory.url.appendingPathComponent("proc-cgroup").path,
                          cgroupRoot: directory.url.appendingPathComponent("root").path)
    }

    @Test func theLeastOfTheProcesssOwnLimitsCounts() throws {
        let none = try Self.tree(v2: "/", files: [:])
        #expect(Self.limit(none) == (24 << 30, false))
        let v2 = try Self.tree(v2: "/job/step", files: ["/job/step/memory.max": "8589934592\n"])
        #expect(Self.limit(v2) == (8 << 30, true))
        let v1 = try Self.tree(v1: "/slurm/uid_0/job_7", files: ["/memory/slurm/uid_0/job_7/memory.limit_in_bytes": "4294967296\n"])
        #expect(Self.limit(v1) == (4 << 30, true))
        #expect(Self.limit(v1, environment: ["SLURM_MEM_PER_NODE": "2048"]) == (2 << 30, true))
        #expect(Self.limit(none, environment: ["SLURM_MEM_PER_NODE": "16384"]) == (16 << 30, true))
        #expect(Self.limit(none, environment: ["SLURM_MEM_PER_CPU": "1024", "SLURM_CPUS_ON_NODE": "3"]) == (3 << 30, true))
    }

    /// Slurm puts a job's limit on its job cgroup, above the step's and the
    /// task's the process sits in, whose own files say "max".
    @Test func aLimitOnAnAncestorCounts() throws {
        let v2 = try Self.tree(v2: "/system.slice/slurmstepd.scope/job_7/step_0/user/task_0", files: [
            "/system.slice/slurmstepd.scope/job_7/memory.max": "6442450944\n",
            "/system.slice/slurmstepd.scope/job_7/step_0/memory.max": "max\n",
            "/system.slice/slurmstepd.scope/job_7/step_0/user/task_0/memory.max": "max\n"])
        #expect(Self.limit(v2) == (6 << 30, true))
        let v1 = try Self.tree(v1: "/slurm/uid_0/job_7/step_0/task_0", files: [
            "/memory/slurm/uid_0/job_7/memory.limit_in_bytes": "3221225472\n",
            "/memory/slurm/uid_0/job_7/step_0/task_0/memory.limit_in_bytes": "9223372036854771712\n"])
        #expect(Self.limit(v1) == (3 << 30, true))
    }

    /// No limit, or one that cannot be read as one, leaves the host's memory.
    @Test func whatIsNoLimitIsIgnored() throws {
        let unlimited = try Self.tree(v2: "/a", v1: "/b", files: [
            "/a/memory.max": "max\n", "/memory/b/memory.limit_in_bytes": "9223372036854771712\n", "/memory.max": "12 GiB"])
        #expect(Self.limit(unlimited) == (24 << 30, false))
        for garbled in ["", "-1", "0", "nonsense", "99999999999999999999999"] {
            #expect(Self.limit(unlimited, environment: ["SLURM_MEM_PER_NODE": garbled]) == (24 << 30, false), "\(garbled.debugDescription)")
            #expect(Self.limit(unlimited, environment: ["SLURM_MEM_PER_CPU": garbled, "SLURM_CPUS_ON_NODE": "2"]) == (24 << 30, false))
        }
        #expect(Self.limit(unlimited, environment: ["SLURM_MEM_PER_CPU": "\(UInt64.max / 2)", "SLURM_CPUS_ON_NODE": "4"]) == (24 << 30, false),
                "an overflowing product was taken as a limit")
        // A path that climbs out of the cgroup tree is not followed, though a limit lies where it leads.
        let climbing = try Self.tree(v2: "/../outside", files: ["/../outside/memory.max": "1073741824\n"])
        #expect(FileManager.default.fileExists(atPath: climbing.url.appendingPathComponent("outside/memory.max").path))
        #expect(Self.limit(climbing) == (24 << 30, false))
    }
}
