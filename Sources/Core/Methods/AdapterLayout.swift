// AdapterLayout: where a PEFT method's trainable tensors live in one arena,
// under the key names PEFT saves them with, layer by layer.
import Trial

/// The LoRA or IA³ tensors of a model, in PEFT's names and shapes:
/// `base_model.model.model.layers.L.self_attn.q_proj.lora_A.weight` (r, in),
/// `….lora_B.weight` (out, r), `….k_proj.ia3_l` (out, 1), `….down_proj.ia3_l` (1, in).
public struct AdapterLayout: Sendable {
    public let entries: [ParameterEntry]
    public let totalCount: Int
    /// Per layer, the offset range of its tensors (contiguous).
    let layerOffsets: [Range<Int>]

    public static func key(layer: Int, _ kind: ProjectionKind, _ suffix: String) -> String {
        "base_model.model.model.layers.\(layer).\(kind.modulePath).\(suffix)"
    }

    public static func dimensions(_ c: LlamaConfiguration, _ kind: ProjectionKind) -> (inDim: Int, outDim: Int) {
        switch kind {
        case .q: (c.hiddenSize, c.queryWidth)
        case .k, .v: (c.hiddenSize, c.kvWidth)
        case .o: (c.queryWidth, c.hiddenSize)
        case .gate, .up: (c.hiddenSize, c.intermediateSize)
        case .down: (c.intermediateSize, c.hiddenSize)
        }
    }

    public init(config c: LlamaConfiguration, method: MethodSettings) {
        var entries: [ParameterEntry] = []
        var offset = 0
        var layerOffsets: [Range<Int>] = []
        func add(_ name: String, _ shape: [Int]) {
            let e = ParameterEntry(name: name, shape: shape, offset: offset)
            entries.append(e)
            offset += (e.count + 15) & ~15
        }
        for l in 0..<c.layerCount {
            let start = offset
            for kind in method.resolvedTargets {
                let (inDim, outDim) = AdapterLayout.dimensions(c, kind)
                switch method.kind {
                case .lora, .qlora:
                    add(AdapterLayout.key(layer: l, kind, "lora_A.weight"), [method.rank, inDim])
                    add(AdapterLayout.key(layer: l, kind, "lora_B.weight"), [outDim, method.rank])
                case .ia3:
                    add(AdapterLayout.key(layer: l, kind, "ia3_l"), kind == .down ? [1, inDim] : [outDim, 1])
                case .full:
                    break
                }
            }
            layerOffsets.append(start..<offset)
        }
        self.entries = entries
        self.totalCount = offset
        self.layerOffsets = layerOffsets
    }

    private func entry(_ name: String) -> ParameterEntry {
        guard let e = entries.first(where: { $0.name == name }) else { preconditionFailure("no adapter tensor \(name)") }
        return e
    }

    /// PEFT's initialisation: LoRA A ~ U(−1/√in, 1/√in) (Kaiming-uniform with
    /// a = √5), B = 0; IA³ vectors = 1.
    func initialise(_ base: UnsafeMutablePointer<Float>, method: MethodSettings, rng: inout SeededGenerator) {
        for e in entries {
            let p = base + e.offset
            if e.name.hasSuffix("lora_A.weight") {
                let bound = 1 / Float(e.shape[1]).squareRoot()
                for i in 0..<e.count { p[i] = (2 * rng.nextUniform() - 1) * bound }
            } else if e.name.hasSuffix("ia3_l") {
                p.update(repeating: 1, count: e.count)
            } else {
                p.update(repeating: 0, count: e.count)
            }
        }
    }

    /// The adapter of each (layer, projection), pointing into the arenas.
    func adapters(method: MethodSettings, parameters: UnsafeMutablePointer<Float>, gradients: UnsafeMutablePointer<Float>)
        -> (Int, ProjectionKind) -> Adapter? {
        var table: [String: Adapter] = [:]
        for l in layerOffsets.indices {
            for kind in method.resolvedTargets {
                switch method.kind {
                case .lora, .qlora:
                    let a = entry(AdapterLayout.key(layer: l, kind, "lora_A.weight")), b = entry(AdapterLayout.key(layer: l, kind, "lora_B.weight"))
                    table["\(l).\(kind.rawValue)"] = .lora(LoRAAdapter(
                        rank: method.rank, scale: method.loraScale, dropout: method.dropout,
                        a: FloatPointer(parameters + a.offset), b: FloatPointer(parameters + b.offset),
                        gradA: FloatPointer(gradients + a.offset), gradB: FloatPointer(gradients + b.offset)))
                case .ia3:
                    let e = entry(AdapterLayout.key(layer: l, kind, "ia3_l"))
                    table["\(l).\(kind.rawValue)"] = .ia3(IA3Scale(
                        position: kind == .down ? .input : .output,
                        vector: FloatPointer(parameters + e.offset), grad: FloatPointer(gradients + e.offset)))
                case .full:
                    break
                }
            }
        }
        return { l, kind in table["\(l).\(kind.rawValue)"] }
    }

    /// Per layer, its adapters' gradients (contiguous) for clipping.
    func layerRanges(gradients: UnsafeMutablePointer<Float>) -> [GradientRange] {
        layerOffsets.map { GradientRange(FloatPointer(gradients + $0.lowerBound), count: $0.count, offset: $0.lowerBound) }
    }
}
