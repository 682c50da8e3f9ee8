// ModelCache: base models and embedders loaded once per process and shared
// read-only by every trial the process runs, within a memory budget for the
// models no trial holds.
import Core
import Trial
import Foundation
import Logging
import Protocol

/// Loaded models by path and storage; thread-safe.
///
/// A trial holds its model through `withLanguageModel`, and the cache drops
/// nothing a trial holds. Between trials it keeps the idle models for the
/// next trial that asks, but only up to `idleBudget` bytes: when a trial
/// takes a model, the idle others are dropped, least recently used first,
/// until the rest fit. On a 24 GiB host (a 4 GiB budget for a worker on
/// every core) SmolLM2's models in every storage fit together, and an idle
/// Llama-3.2-1B model does not (Float32 with its packed copies 8.8 GB), so a
/// worker that changes storage loads again, seconds, instead of keeping the
/// f32, bf16 and NF4 models beside a full fine-tuning trial's 15 GB.
public final class ModelCache: @unchecked Sendable {
    private struct Cached {
        let model: LanguageModel
        let path: String
        let storage: LinearStorage
        /// Trials holding it now.
        var holders = 0
        /// When a trial last took it (`clock`), for least recently used first.
        var lastTaken: UInt64 = 0
    }

    private let lock = NSLock()
    /// Keyed by storage and path: one file may be held as float32 and as NF4.
    private var models: [String: Cached] = [:]
    private var clock: UInt64 = 0
    /// Its own lock: `lock` is held while a model loads (seconds), and a worker's socket thread must not wait
    /// that long to say hello. A storage of a path is listed from its load to its drop.
    private let onHandLock = NSLock()
    private var onHand: Set<Message.ModelStorage> = []
    private var embedders: [String: SentenceEmbedder] = [:]
    private let logger: Logger

    /// Bytes of models no trial holds that the cache keeps for later trials.
    public let idleBudget: Int

    /// The default `idleBudget` of a process running its trials on
    /// `threads` threads, and where its figure comes from: a sixth of the
    /// memory it may count on (`MemoryLimit`) times its share of the cores,
    /// as workers split the cores they share. Under a limit of its own (a
    /// cgroup's, a Slurm job's) the cores are those it may run on
    /// (`activeProcessorCount`: a job's or container's cpuset), since the
    /// workers of one `salloc` or container share its limit; else the
    /// host's memory and all its cores (`processorCount`). 4 GiB for one
    /// worker on both cores of a 24 GiB host, 2 GiB each for two.
    public static func defaultIdleBudget(threads: Int = ProcessInfo.processInfo.activeProcessorCount) -> (bytes: Int, source: String) {
        let (limit, own) = MemoryLimit.bytes()
        let cores = own ? ProcessInfo.processInfo.activeProcessorCount : ProcessInfo.processInfo.processorCount
        let share = min(1, Double(max(1, threads)) / Double(max(1, cores)))
        let source = "\(own ? "its own memory limit" : "the host's memory"), \(limit >> 20) MiB, × \(min(threads, cores))/\(cores) cores ÷ 6"
        return (Int(clamping: UInt64(Double(limit) * share / 6)), source)
    }

    public init(logger: Logger, idleBudget: Int = ModelCache.defaultIdleBudget().bytes) {
        self.logger = logger
        self.idleBudget = max(0, idleBudget)
    }

    /// Runs `body` with the model at `path`, with QLoRA's NF4 projections
    /// when `storage` says so, loading it unless cached; the cache drops
    /// nothing while `body` runs. When no other trial holds the model,
    /// `whenAlone` runs first, under the cache's lock, so that it may drop
    /// what this trial will not use (`LlamaModel.dropFloat32Copies`): a
    /// trial taking the model meanwhile waits until it has, and none holds it
    /// already whose products could be reading what it drops. Every other
    /// take and release waits too (seconds at Llama-3.2-1B, whose dropped
    /// copies write 3.9 GB of rows back), and `whenAlone` must not call the
    /// cache (its lock is not re-entrant).
    public func withLanguageModel<Result>(
        _ path: URL, storage: LinearStorage, context: ComputeContext,
        whenAlone: (LanguageModel) -> Void = { _ in },
        _ body: (LanguageModel) throws -> Result
    ) throws -> Result {
        let key = storage.rawValue + ":" + path.standardizedFileURL.path
        let model = try take(key, path: path, storage: storage, context: context, whenAlone: whenAlone)
        defer { lock.withLock { models[key]?.holders -= 1 } }
        return try body(model)
    }

    private func take(_ key: String, path: URL, storage: LinearStorage, context: ComputeContext,
                      whenAlone: (LanguageModel) -> Void) throws -> LanguageModel {
        lock.lock()
        defer { lock.unlock() }
        clock += 1
        if var cached = models[key] {
            dropIdle(keeping: key)
            cached.holders += 1
            cached.lastTaken = clock
            models[key] = cached
            if cached.holders == 1 { whenAlone(cached.model) }
            return cached.model
        }
        // A path that names no model (missing, not a GGUF, a directory without one) drops nothing: its
        // load would fail after the idle models had gone. A file that resolves but fails to load still does.
        _ = try ModelLocation.resolve(path)
        dropIdle(keeping: key)
        logger.info("loading model", metadata: ["path": "\(path.path)", "storage": "\(storage.rawValue)"])
        let model = try LanguageModel.load(path, storage: storage, context: context)
        let standardized = path.standardizedFileURL.path
        models[key] = Cached(model: model, path: standardized, storage: storage, holders: 1, lastTaken: clock)
        onHandLock.withLock { _ = onHand.insert(Message.ModelStorage(model: standardized, storage: storage)) }
        whenAlone(model)
        return model
    }

    /// Drops the idle models other than `key`'s, least recently taken first,
    /// until those left fit `idleBudget`. Called with `lock` held.
    private func dropIdle(keeping key: String) {
        var idle = models.filter { $0.key != key && $0.value.holders == 0 }
            .map { (key: $0.key, taken: $0.value.lastTaken, bytes: $0.value.model.model.heldBytes) }
            .sorted { $0.taken < $1.taken }
        var total = idle.reduce(0) { $0 + $1.bytes }
        while total > idleBudget, !idle.isEmpty {
            let oldest = idle.removeFirst()
            total -= oldest.bytes
            guard let dropped = models.removeValue(forKey: oldest.key) else { continue }
            logger.info("dropping an idle model over the cache's budget", metadata: [
                "path": "\(dropped.path)", "bytes": "\(oldest.bytes)", "budget": "\(idleBudget)"])
            onHandLock.withLock { _ = onHand.remove(Message.ModelStorage(model: dropped.path, storage: dropped.storage)) }
        }
    }

    public func embedder(_ path: URL) throws -> SentenceEmbedder {
        let key = path.standardizedFileURL.path
        lock.lock()
        defer { lock.unlock() }
        if let cached = embedders[key] { return cached }
        let embedder = try SentenceEmbedder.load(path)
        embedders[key] = embedder
        return embedder
    }

    /// The models held and their storages, for the worker's hello and each `ready`, by path and then storage.
    public var modelsOnHand: [Message.ModelStorage] {
        onHandLock.withLock { onHand.sorted { ($0.model, $0.storage.rawValue) < ($1.model, $1.storage.rawValue) } }
    }

    /// Keys (`storage:path`) of the models cached now, held or idle (tests).
    var cachedKeys: [String] { lock.withLock { models.keys.sorted() } }
}
