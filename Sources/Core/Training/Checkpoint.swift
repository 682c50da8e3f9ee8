// Checkpoint: everything needed to continue a trial exactly where it stopped —
// trained tensors, AdamW moments and step, both random generators, epoch and
// step counters, the per-epoch history and the run's settings — in one
// safetensors file whose metadata carries a magic string and a format version.
import Foundation
import Trial

/// A trial's resumable state.
public struct TrainingCheckpoint: Sendable {
    public static let magic = "factsweep-checkpoint"
    public static let version = 1
    public static let fileName = "checkpoint.safetensors"

    /// The JSON stored under the `factsweep` metadata key.
    public struct State: Codable, Sendable, Equatable {
        public var magic: String
        public var version: Int
        public var settings: TrainingSettings
        /// Identifies the base model: configuration and a sample of its weights.
        public var modelFingerprint: String
        public var completedEpochs: Int
        public var steps: Int
        public var optimizerStep: Int
        public var orderRNG: SeededGenerator
        public var dropoutRNG: SeededGenerator
        public var trainSeconds: Double
        /// Whether the run's batches laid their shared prompt prefix once
        /// (`TokenBatch(examples:sharingPrefix:)`): a resumed run lays them
        /// the same way whatever its process's `FACTSWEEP_SHARED_PREFIX`, as
        /// the two layouts sum in different orders (last bits of the loss).
        /// Absent in checkpoints written before it was recorded: the resuming
        /// process's layout then.
        public var sharedPromptPrefix: Bool?
        /// What the run's products ran on (`MatmulEngine.productsName`):
        /// a run resumed on another engine is told so (its later epochs sum
        /// differently from an uninterrupted run's). Absent in older checkpoints.
        public var engine: String?
        public var reports: [EpochReport]
        /// Names and shapes of the trained tensors, in arena order.
        public var tensors: [TensorName]
    }

    public struct TensorName: Codable, Sendable, Equatable {
        public var name: String
        public var shape: [Int]
    }

    /// Writes `state` and the arenas atomically to `directory/checkpoint.safetensors`.
    /// `moments` holds Floats, or bf16 bits two to a Float when
    /// `state.settings.optimizer` says so; they are stored as F32 or BF16.
    public static func write(_ state: State, parameters: FloatArena, moments: FloatArena, to directory: URL) throws {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let json = try JSONEncoder().encode(state)
        var writer = SafetensorsWriter(metadata: ["factsweep": String(decoding: json, as: UTF8.self)])
        // Borrowed, not copied: at 1B scale the arenas are 10 GB, and a copy would not fit beside them.
        try writer.add("parameters", shape: [parameters.capacity], borrowing: UnsafeBufferPointer(parameters.buffer))
        if state.settings.optimizer.momentPrecision == .bf16 {
            let bits = UnsafeBufferPointer(
                start: UnsafeRawPointer(moments.base).assumingMemoryBound(to: UInt16.self), count: 2 * moments.capacity)
            try writer.add("adam_moments", shape: [bits.count], borrowingBFloat16Bits: bits)
        } else {
            try writer.add("adam_moments", shape: [moments.capacity], borrowing: UnsafeBufferPointer(moments.buffer))
        }
        try writer.write(to: directory.appendingPathComponent(fileName))
    }

    /// Reads a checkpoint, refusing anything that is not one or whose version is unknown.
    public static func read(_ directory: URL) throws -> (State, SafetensorsFile) {
        let url = directory.appendingPathComponent(fileName)
        let file = try SafetensorsFile(url: url)
        guard let text = file.metadata["factsweep"] else {
            throw CheckpointError(file: url.path, reason: "not a FactSweep checkpoint (no factsweep metadata)")
        }
        let state: State
        do { state = try JSONDecoder().decode(State.self, from: Data(text.utf8)) } catch {
            throw CheckpointError(file: url.path, reason: "unreadable checkpoint metadata: \((error as? DecodingError)?.shortDescription ?? "\(error)")")
        }
        guard state.magic == magic else { throw CheckpointError(file: url.path, reason: "wrong magic \"\(state.magic)\"") }
        guard state.version == version else {
            throw CheckpointError(file: url.path, reason: "checkpoint format version \(state.version) is not supported (this build reads \(version))")
        }
        return (state, file)
    }
}

/// A checkpoint that cannot be used, naming the file.
public struct CheckpointError: Error, CustomStringConvertible, Equatable {
    public let file: String
    public let reason: String
    public init(file: String, reason: String) { self.file = file; self.reason = reason }
    public var description: String { "\(file): \(reason)" }
}

extension LlamaModel {
    /// The configuration and a sample of every tensor the model holds as
    /// Float32 (every 4099th Float, a prime stride), hashed: enough to tell
    /// one base model from another. A model loaded with NF4 or bf16
    /// projections hashes all but those (`fingerprint(as:)`). Made once and
    /// kept until a write through `tensor(_:)`: every checkpoint asks, and
    /// each projection it samples may be released (`ReleasablePlainRows`),
    /// which its read writes back in full first.
    public var fingerprint: String {
        fingerprintCache.withLock { cached in
            if let cached { return cached }
            let made = fingerprint(of: layout.entries)
            cached = made
            return made
        }
    }

    /// The fingerprint a load of this model's files with `storage` has, which
    /// is what a checkpoint of a trial on that storage records (a bf16 LoRA's,
    /// a QLoRA's): `export` loads Float32 projections whatever the trial
    /// trained on. Nil when this model does not hold what that load hashes
    /// (one kept in NF4 or bf16, asked for Float32's).
    public func fingerprint(as storage: LinearStorage) -> String? {
        if storage == self.storage { return fingerprint }
        guard self.storage == .float32 else { return storage == .float32 ? nil : fingerprint }
        // Same names in the same order as that load's layout; offsets in this arena.
        let entries = ParameterLayout(config: config, linears: false).entries.compactMap { layout[$0.name] }
        return fingerprint(of: entries)
    }

    private func fingerprint(of entries: [ParameterEntry]) -> String {
        let c = config
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for e in entries {
            withPlainRows(of: e) { t in
                var i = 0
                while i < e.count {
                    hash = (hash ^ UInt64(t[i].bitPattern)) &* 0x100_0000_01b3
                    i += 4099
                }
            }
        }
        return "llama V\(c.vocabularySize) C\(c.hiddenSize) F\(c.intermediateSize) L\(c.layerCount) H\(c.headCount)/\(c.kvHeadCount) "
            + "hd\(c.headDimension) tied \(c.tieWordEmbeddings) weights \(String(hash, radix: 16))"
    }
}

extension FineTuning {
    /// The trained state of the checkpoint in `directory` over `base`, for
    /// export and inference (activations sized for `maxSeq` tokens, batch 1),
    /// in f32 products: a bf16 trial's adapters over a Float32 base are what
    /// PEFT loads them onto.
    public convenience init(checkpoint directory: URL, base: LlamaModel, maxSeq: Int, context: ComputeContext) throws {
        let (state, file) = try TrainingCheckpoint.read(directory)
        // The trial may have trained on another storage of the same files (bf16 LoRA, NF4 QLoRA).
        let storage = LinearStorage.training(state.settings.method.kind, precision: state.settings.productPrecision)
        let expected = base.fingerprint(as: storage) ?? base.fingerprint
        guard state.modelFingerprint == expected else {
            throw CheckpointError(file: file.origin, reason: "made with another base model (\(state.modelFingerprint)); this one is \(expected)")
        }
        try self.init(base: base, method: state.settings.method, optimizer: state.settings.optimizer, maxBatch: 1, maxSeq: maxSeq,
                      seed: state.settings.seed, context: context)
        guard file.shape(of: "parameters") == [parameters.capacity] else {
            throw CheckpointError(file: file.origin, reason: "its parameters do not match the \(method.kind.rawValue) method on this model")
        }
        try file.read("parameters", into: parameters.buffer)
    }
}
