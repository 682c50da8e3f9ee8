// ModelCache: base models and embedders loaded once per process and shared
// read-only by every trial the process runs.
import Core
import Trial
import Foundation
import Logging

/// Loaded models by path and storage; thread-safe.
public final class ModelCache: @unchecked Sendable {
    private let lock = NSLock()
    /// Keyed by storage and path: one file may be held as float32 and as NF4.
    private var models: [String: LanguageModel] = [:]
    /// Its own lock: `lock` is held while a model loads (seconds), and a worker's socket thread must not wait
    /// that long to say hello.
    private let pathsLock = NSLock()
    private var modelPaths: Set<String> = []
    private var embedders: [String: SentenceEmbedder] = [:]
    private let logger: Logger

    public init(logger: Logger) { self.logger = logger }

    /// The model at `path`, with QLoRA's NF4 projections when `storage` says so.
    public func languageModel(_ path: URL, storage: LinearStorage, context: ComputeContext) throws -> LanguageModel {
        let key = storage.rawValue + ":" + path.standardizedFileURL.path
        lock.lock()
        defer { lock.unlock() }
        if let cached = models[key] { return cached }
        logger.info("loading model", metadata: ["path": "\(path.path)", "storage": "\(storage.rawValue)"])
        let model = try LanguageModel.load(path, storage: storage, context: context)
        models[key] = model
        pathsLock.withLock { _ = modelPaths.insert(path.standardizedFileURL.path) }
        return model
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

    /// Paths of the models held, for the worker's hello.
    public var loadedModels: [String] {
        pathsLock.withLock { modelPaths.sorted() }
    }
}
