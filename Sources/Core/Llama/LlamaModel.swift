// LlamaModel: a Llama model's configuration and its parameters in one arena,
// filled from any TensorSource (GGUF or Hugging Face safetensors) or at random.

/// A Llama model in memory. The parameter arena is written only by loading and
/// by the optimizer of full fine-tuning; every other user reads it.
public final class LlamaModel: @unchecked Sendable {
    public let config: LlamaConfiguration
    public let layout: ParameterLayout
    public let parameters: FloatArena
    public let weights: LlamaWeights

    /// A model with all parameters zero; `load` or `randomize` fills it.
    public init(config: LlamaConfiguration) {
        self.config = config
        layout = ParameterLayout(config: config)
        parameters = FloatArena(capacity: layout.totalCount)
        weights = LlamaWeights(layout: layout, config: config, base: parameters.base)
    }

    /// Loads every tensor of the layout from `source`, checking shapes.
    public convenience init(config: LlamaConfiguration, source: TensorSource) throws {
        self.init(config: config)
        for entry in layout.entries {
            guard let shape = source.shape(of: entry.name) else {
                throw LoadError.missingTensor(file: source.origin, tensor: entry.name)
            }
            guard shape == entry.shape else {
                throw LoadError.shapeMismatch(file: source.origin, tensor: entry.name, expected: entry.shape, found: shape)
            }
            try source.read(entry.name, into: tensor(entry.name))
        }
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
