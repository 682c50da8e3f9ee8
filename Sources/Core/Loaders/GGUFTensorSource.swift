// GGUFTensorSource: a GGUF Llama file seen through Hugging Face's names,
// shapes and row order.
//
// llama.cpp's convert_hf_to_gguf.py permutes the rows of q_proj and k_proj so
// that each head's two RoPE halves are interleaved (its `permute`: reshape to
// (heads, 2, headDim/2, in), swap axes 1 and 2). FactSweep's attention uses
// Hugging Face's rotate_half RoPE, so reading undoes the permutation: q with
// `head_count` heads, k with `head_count_kv`.
import Foundation
import Trial

/// GGUF ↔ Hugging Face tensor names for the Llama architecture.
public enum GGUFTensorNames {
    /// Per-layer names: GGUF suffix after `blk.N.` and Hugging Face suffix after `model.layers.N.`.
    static let layerNames: [(gguf: String, hf: String)] = [
        ("attn_q.weight", "self_attn.q_proj.weight"),
        ("attn_k.weight", "self_attn.k_proj.weight"),
        ("attn_v.weight", "self_attn.v_proj.weight"),
        ("attn_output.weight", "self_attn.o_proj.weight"),
        ("ffn_gate.weight", "mlp.gate_proj.weight"),
        ("ffn_up.weight", "mlp.up_proj.weight"),
        ("ffn_down.weight", "mlp.down_proj.weight"),
        ("attn_norm.weight", "input_layernorm.weight"),
        ("ffn_norm.weight", "post_attention_layernorm.weight"),
    ]
    static let globalNames: [String: String] = [
        "token_embd.weight": "model.embed_tokens.weight",
        "output_norm.weight": "model.norm.weight",
        "output.weight": "lm_head.weight",
    ]

    /// The Hugging Face name of a GGUF tensor, or nil for tensors FactSweep
    /// does not use (`rope_freqs.weight`, ...).
    public static func huggingFaceName(forGGUF name: String) -> String? {
        if let global = globalNames[name] { return global }
        let parts = name.split(separator: ".", maxSplits: 2)
        guard parts.count == 3, parts[0] == "blk", let layer = Int(parts[1]), layer >= 0 else { return nil }
        let suffix = String(parts[2])
        guard let hf = layerNames.first(where: { $0.gguf == suffix })?.hf else { return nil }
        return "model.layers.\(layer).\(hf)"
    }
}

/// Hugging Face-named tensors read from a GGUF file, converted to Float with
/// q/k rows restored to Hugging Face order.
public struct GGUFTensorSource: TensorSource {
    public let file: GGUFFile
    /// Heads used to undo the q permutation (`llama.attention.head_count`).
    public let headCount: Int
    /// Heads used to undo the k permutation (`llama.attention.head_count_kv`).
    public let kvHeadCount: Int
    private let ggufName: [String: String]
    public let tensorNames: [String]

    /// Wraps `file`; head counts come from its configuration.
    public init(file: GGUFFile, headCount: Int, kvHeadCount: Int) {
        self.file = file
        self.headCount = headCount
        self.kvHeadCount = kvHeadCount
        var map: [String: String] = [:]
        var names: [String] = []
        for t in file.tensors {
            guard let hf = GGUFTensorNames.huggingFaceName(forGGUF: t.name) else { continue }
            map[hf] = t.name
            names.append(hf)
        }
        ggufName = map
        tensorNames = names
    }

    /// Wraps `file` using the head counts of `configuration`.
    public init(file: GGUFFile, configuration: LlamaConfiguration) {
        self.init(file: file, headCount: configuration.headCount, kvHeadCount: configuration.kvHeadCount)
    }

    public var origin: String { file.path }

    public func shape(of name: String) -> [Int]? {
        ggufName[name].flatMap { file.tensor($0) }?.shape
    }

    public func read(_ name: String, into destination: UnsafeMutableBufferPointer<Float>) throws {
        guard let info = ggufName[name].flatMap({ file.tensor($0) }) else {
            throw LoadError.missingTensor(file: file.path, tensor: name)
        }
        guard destination.count == info.elementCount else {
            throw LoadError.shapeMismatch(file: file.path, tensor: name, expected: info.shape, found: [destination.count])
        }
        let heads: Int
        if name.hasSuffix("self_attn.q_proj.weight") {
            heads = headCount
        } else if name.hasSuffix("self_attn.k_proj.weight") {
            heads = kvHeadCount
        } else {
            return try file.read(info, into: destination)
        }
        let rows = info.shape[0]
        guard info.dimensions.count == 2, heads > 0, rows % (2 * heads) == 0 else {
            throw LoadError.malformed(
                file: file.path,
                reason: "tensor \(info.name) has shape \(info.shape), which cannot be split into \(heads) RoPE heads")
        }
        let headDimension = rows / heads
        try file.read(info, into: destination) { row in
            Self.ggufRow(forHuggingFaceRow: row, headDimension: headDimension)
        }
    }

    /// Where Hugging Face row `row` of q or k is stored in GGUF. Within a head,
    /// HF row `j * half + i` (j ∈ {0, 1} the RoPE half) was written by llama.cpp
    /// as row `2 * i + j`.
    static func ggufRow(forHuggingFaceRow row: Int, headDimension: Int) -> Int {
        let half = headDimension / 2
        let head = row / headDimension, within = row % headDimension
        return head * headDimension + 2 * (within % half) + within / half
    }
}
