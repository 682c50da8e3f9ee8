// TensorSource: what the model needs from a weight file, whatever its format.
import Trial

/// A read-only set of named tensors, named as in Hugging Face's Llama
/// (`model.layers.0.self_attn.q_proj.weight`, `[out, in]` row-major) and
/// converted to Float on read. GGUF and safetensors readers both provide it, so
/// the model fills its parameter arena the same way from either.
public protocol TensorSource: Sendable {
    /// Where the tensors come from, for error messages.
    var origin: String { get }
    /// Hugging Face tensor names present in the source.
    var tensorNames: [String] { get }
    /// The shape of a tensor in Hugging Face's (PyTorch) order, or nil if absent.
    func shape(of name: String) -> [Int]?
    /// Converts the tensor to Float into `destination`, whose count must equal
    /// the product of the shape.
    func read(_ name: String, into destination: UnsafeMutableBufferPointer<Float>) throws
}

extension TensorSource {
    /// Throws `missingTensor` or `shapeMismatch`, naming this source, unless
    /// `name` is here with shape `expected`.
    public func check(_ name: String, shape expected: [Int]) throws {
        guard let shape = shape(of: name) else { throw LoadError.missingTensor(file: origin, tensor: name) }
        guard shape == expected else {
            throw LoadError.shapeMismatch(file: origin, tensor: name, expected: expected, found: shape)
        }
    }

    /// Reads a whole tensor into a new array, for tests and small tensors;
    /// the model reads straight into its arena instead.
    public func floats(_ name: String) throws -> [Float] {
        guard let shape = shape(of: name) else { throw LoadError.missingTensor(file: origin, tensor: name) }
        var out = [Float](repeating: 0, count: shape.reduce(1, *))
        try out.withUnsafeMutableBufferPointer { try read(name, into: $0) }
        return out
    }
}
