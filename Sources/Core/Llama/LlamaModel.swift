// LlamaModel: a Llama model's configuration and its parameters in one arena,
// filled from any TensorSource (GGUF or Hugging Face safetensors) or at random.
import Trial

/// How a model keeps its seven projections per layer.
public enum LinearStorage: String, Sendable, Codable {
    /// Float32 in the parameter arena (full fine-tuning, LoRA, IA³).
    case float32
    /// bitsandbytes NF4 with double-quantised scales (QLoRA); the arena holds
    /// only embeddings, norms and head, so no Float32 copy of them exists.
    case nf4
}

/// A Llama model in memory: frozen base weights, read-only and shared by every
/// trial a process runs (full fine-tuning trains a copy).
public final class LlamaModel: @unchecked Sendable {
    public let config: LlamaConfiguration
    public let storage: LinearStorage
    public let layout: ParameterLayout
    public let parameters: FloatArena
    public let weights: LlamaWeights
    /// The projections of each layer when `storage == .nf4`.
    public let quantized: [[ProjectionKind: NF4Tensor]]?

    /// A model with all parameters zero; `randomize` fills it.
    public init(config: LlamaConfiguration) {
        self.config = config
        storage = .float32
        layout = ParameterLayout(config: config)
        parameters = FloatArena(capacity: layout.totalCount)
        weights = LlamaWeights(layout: layout, config: config, base: parameters.base)
        quantized = nil
    }

    /// Loads every tensor from `source`, checking shapes; with `.nf4` the
    /// projections are quantised one at a time as they are read.
    public init(config: LlamaConfiguration, source: TensorSource, storage: LinearStorage = .float32, context: ComputeContext = ComputeContext(threads: 1)) throws {
        self.config = config
        self.storage = storage
        layout = ParameterLayout(config: config, linears: storage == .float32)
        parameters = FloatArena(capacity: layout.totalCount)
        weights = LlamaWeights(layout: layout, config: config, base: parameters.base)
        func check(_ name: String, _ expected: [Int]) throws {
            guard let shape = source.shape(of: name) else { throw LoadError.missingTensor(file: source.origin, tensor: name) }
            guard shape == expected else {
                throw LoadError.shapeMismatch(file: source.origin, tensor: name, expected: expected, found: shape)
            }
        }
        for entry in layout.entries {
            try check(entry.name, entry.shape)
            try source.read(entry.name, into: UnsafeMutableBufferPointer(start: parameters.base + entry.offset, count: entry.count))
        }
        guard storage == .nf4 else { quantized = nil; return }
        let largest = ProjectionKind.allCases.map { ParameterLayout.shape(config, $0).reduce(1, *) }.max() ?? 0
        let staging = FloatArena(capacity: largest)
        var layers: [[ProjectionKind: NF4Tensor]] = []
        for l in 0..<config.layerCount {
            var layer: [ProjectionKind: NF4Tensor] = [:]
            for kind in ProjectionKind.allCases {
                let name = ParameterLayout.name(layer: l, kind), shape = ParameterLayout.shape(config, kind)
                try check(name, shape)
                let buffer = UnsafeMutableBufferPointer(start: staging.base, count: shape[0] * shape[1])
                try source.read(name, into: buffer)
                do {
                    layer[kind] = try NF4Tensor(quantizing: UnsafeBufferPointer(buffer), rows: shape[0], columns: shape[1], context: context)
                } catch {
                    throw LoadError.malformed(file: source.origin, reason: "cannot quantise \(name) to NF4: \(error)")
                }
            }
            layers.append(layer)
        }
        quantized = layers
    }

    /// Bytes the frozen base weights occupy (arena plus quantised projections).
    public var baseWeightBytes: Int {
        parameters.byteCount + (quantized?.reduce(0) { $0 + $1.values.reduce(0) { $0 + $1.byteCount } } ?? 0)
    }

    /// The parameter tensor named `name` (Hugging Face naming).
    public func tensor(_ name: String) -> UnsafeMutableBufferPointer<Float> {
        guard let e = layout[name] else { preconditionFailure("no tensor \(name)") }
        return UnsafeMutableBufferPointer(start: parameters.base + e.offset, count: e.count)
    }

    /// Normal(0, std) matrices and unit norms, as transformers initialises a
    /// fresh model: for benchmarks at scales whose weights cannot be fetched.
    public func randomize(seed: UInt64, std: Float = 0.02) {
        var rng = SeededGenerator(seed: seed)
        for e in layout.entries {
            let t = tensor(e.name)
            if e.shape.count == 1 {
                t.update(repeating: 1)
            } else {
                for i in t.indices { t[i] = std * rng.nextNormal() }
            }
        }
    }
}
