// LlamaNetwork: a model as one trial runs it — pointers to the base tensors it
// reads, the projections with whatever adapters its method adds, and pointers
// to the gradients of whatever it trains. Forward and backward run on this.
import Trial

/// A contiguous run of gradient Floats, summed for clipping, and where the
/// tensors it holds the gradients of lie in the trained arena (parameters
/// and AdamW's moments): `offset`, the arena index of its first element.
/// Not `start`'s distance from the gradients' base: full fine-tuning with
/// the update in the backward pass lays every layer's gradients in one
/// layer's span (`FineTuning`).
public struct GradientRange: Sendable {
    public let start: FloatPointer
    public let count: Int
    public let offset: Int
    public init(_ start: FloatPointer, count: Int, offset: Int) { self.start = start; self.count = count; self.offset = offset }
}

/// One layer: its two norms and seven projections.
public struct NetworkLayer: Sendable {
    public let attnNorm: FloatPointer  // (C)
    public let mlpNorm: FloatPointer  // (C)
    public let attnNormGrad: FloatPointer?
    public let mlpNormGrad: FloatPointer?
    public let q, k, v, o, gate, up, down: Projection

    public init(attnNorm: FloatPointer, mlpNorm: FloatPointer, attnNormGrad: FloatPointer?, mlpNormGrad: FloatPointer?,
                projections: [ProjectionKind: Projection]) {
        self.attnNorm = attnNorm; self.mlpNorm = mlpNorm
        self.attnNormGrad = attnNormGrad; self.mlpNormGrad = mlpNormGrad
        func p(_ k: ProjectionKind) -> Projection {
            guard let value = projections[k] else { preconditionFailure("layer lacks \(k.rawValue)") }
            return value
        }
        q = p(.q); k = p(.k); v = p(.v); o = p(.o); gate = p(.gate); up = p(.up); down = p(.down)
    }

    public var projections: [Projection] { [q, k, v, o, gate, up, down] }
}

/// Everything forward and backward read and write for one trial. Its
/// tensors are pointers into its model's arenas, and it does not keep the
/// model alive (only the shared copies it names: the bf16 head, the packed
/// bases): whoever runs it holds the model (`FineTuning` does, as `base`).
/// A network over a model already freed reads freed memory.
public struct LlamaNetwork: Sendable {
    public let config: LlamaConfiguration
    public let embed: FloatPointer  // (V, C)
    public let finalNorm: FloatPointer  // (C)
    public let lmHead: FloatPointer  // (V, C); the embedding when tied
    public let layers: [NetworkLayer]
    public let embedGrad: FloatPointer?
    public let finalNormGrad: FloatPointer?
    /// Set for an untied trained head; a tied head's gradient is `embedGrad`.
    public let lmHeadGrad: FloatPointer?
    /// Per layer, the gradients it produces (contiguous), summed right after
    /// that layer's backward while they are still in cache.
    public internal(set) var layerGradients: [GradientRange]
    /// Gradients complete only at the end of backward (embedding, final norm, head).
    public let finalGradients: [GradientRange]
    /// The frozen head in bf16, for a network whose products run in bf16.
    public let lmHeadBF16: BFloat16Matrix?
    /// The model's packed copies of the frozen Float32 head, when it keeps
    /// them (`LlamaModel.packsFrozenHead`): an adapter network's in f32.
    public let lmHeadPacked: PackedWeight?
    /// The bf16 roundings of the weights this network trains (full
    /// fine-tuning in bf16; the head's is `lmHeadBF16`): written by each
    /// step's update with the weights, or made stale by it
    /// (`invalidateTrainedRoundings`) and made again by the next product.
    public let trainedRoundings: [BFloat16Matrix]

    public init(config: LlamaConfiguration, embed: FloatPointer, finalNorm: FloatPointer, lmHead: FloatPointer, layers: [NetworkLayer],
                embedGrad: FloatPointer? = nil, finalNormGrad: FloatPointer? = nil, lmHeadGrad: FloatPointer? = nil,
                layerGradients: [GradientRange] = [], finalGradients: [GradientRange] = [], lmHeadBF16: BFloat16Matrix? = nil,
                lmHeadPacked: PackedWeight? = nil, trainedRoundings: [BFloat16Matrix] = []) {
        self.config = config; self.embed = embed; self.finalNorm = finalNorm; self.lmHead = lmHead; self.layers = layers
        self.embedGrad = embedGrad; self.finalNormGrad = finalNormGrad; self.lmHeadGrad = lmHeadGrad
        self.layerGradients = layerGradients; self.finalGradients = finalGradients
        self.lmHeadBF16 = lmHeadBF16; self.lmHeadPacked = lmHeadPacked; self.trainedRoundings = trainedRoundings
    }

    /// The output head (V, C) as its products read it.
    var head: FrozenMatrix {
        lmHeadBF16.map { .bf16($0) } ?? .dense(lmHead, outDim: config.vocabularySize, inDim: config.hiddenSize, packed: lmHeadPacked)
    }

    /// Marks the bf16 roundings of the trained weights stale: call after
    /// anything writes the trained parameters (`FineTuning.step` does). Each
    /// is made again by the next product that reads it, in a step or in an
    /// evaluation.
    public func invalidateTrainedRoundings() {
        for rounded in trainedRoundings { rounded.invalidate() }
    }

    /// Whether the head's weight is trained (its gradient GEMM is needed).
    var headGrad: FloatPointer? { config.tieWordEmbeddings ? embedGrad : lmHeadGrad }
}

extension LlamaModel {
    /// The model with nothing trained: for inference, and the base of adapter
    /// methods. In bf16 precision its head is this model's shared bf16 copy
    /// (made by the first network that asks); its projections are bf16 when
    /// the model was loaded with `.bf16` storage.
    public func frozenNetwork(adapters: (Int, ProjectionKind) -> Adapter? = { _, _ in nil }, precision: Precision = .f32,
                              context: ComputeContext = ComputeContext(threads: 1)) -> LlamaNetwork {
        network(weights: weights, grads: nil, adapters: adapters, bf16Head: precision == .bf16 ? bf16HeadCopy(context: context) : nil,
                packFrozen: true)
    }

    /// A network over `weights` (this model's arena or a trained copy with the same
    /// layout) whose base tensors train when `grads` is given. Projections the
    /// layout lacks come from the model's NF4 or bf16 store. With
    /// `roundTrained` (full fine-tuning in bf16) each trained projection and
    /// the head read a bf16 rounding of their Float32 weight, made once per
    /// step and read by the products of both directions (`BFloat16Matrix`'s
    /// `init(rounding:)` says when in oneDNN's blocked layouts,
    /// `LlamaModel.blocksTrainedRoundings` for which models). With `packFrozen` (`weights` is
    /// this model's own, frozen) each Float32 projection and the Float32 head
    /// read the model's packed copies.
    func network(weights w: LlamaWeights, grads g: LlamaWeights?, adapters: (Int, ProjectionKind) -> Adapter?,
                 bf16Head: BFloat16Matrix? = nil, roundTrained: Bool = false, packFrozen: Bool = false) -> LlamaNetwork {
        let c = config
        let rounds = roundTrained && g != nil
        var trainedRounded: [BFloat16Matrix] = []
        let blocks = rounds && Self.blocksTrainedRoundings(c)
        func rounding(_ w: FloatPointer, rows: Int, columns: Int) -> BFloat16Matrix {
            let m = BFloat16Matrix(rounding: w.base, rows: rows, columns: columns, blocked: blocks)
            trainedRounded.append(m)
            return m
        }
        let layers = w.layers.enumerated().map { l, lw in
            let lg = g?.layers[l]
            var projections: [ProjectionKind: Projection] = [:]
            for kind in ProjectionKind.allCases {
                let (inDim, outDim) = AdapterLayout.dimensions(c, kind)
                let weight: FrozenMatrix
                if let dense = lw.projections[kind], rounds {
                    weight = .bf16(rounding(dense, rows: outDim, columns: inDim))
                } else if let dense = lw.projections[kind] {
                    let frozen = packFrozen && g == nil ? frozenPack(layer: l, kind) : nil
                    weight = .dense(dense, outDim: outDim, inDim: inDim, packed: frozen)
                } else if let quantized = quantized?[l][kind] {
                    weight = .nf4(quantized)
                } else if let bf16 = bf16Projections?[l][kind] {
                    weight = .bf16(bf16)
                } else {
                    preconditionFailure("layer \(l) has no \(kind.rawValue) weight")
                }
                projections[kind] = Projection(kind: kind, inDim: inDim, outDim: outDim, weight: weight,
                                               weightGrad: lg?.projections[kind], adapter: adapters(l, kind))
            }
            return NetworkLayer(attnNorm: lw.attnNorm, mlpNorm: lw.mlpNorm, attnNormGrad: lg?.attnNorm, mlpNormGrad: lg?.mlpNorm,
                                projections: projections)
        }
        var layerGradients: [GradientRange] = [], finalGradients: [GradientRange] = []
        if let g {
            // A tensor's index in the trained arena: `w` lays it out as `ParameterLayout` does, the embedding first.
            func offset(_ p: FloatPointer) -> Int { p.base - w.embed.base }
            // A layer's tensors are contiguous in the layout, attnNorm first, down last.
            layerGradients = zip(g.layers, w.layers).map { layer, weights in
                let end = (layer.projections[.down]?.base ?? layer.mlpNorm.base) + (layer.projections[.down] == nil ? c.hiddenSize : c.hiddenSize * c.intermediateSize)
                return GradientRange(layer.attnNorm, count: end - layer.attnNorm.base, offset: offset(weights.attnNorm))
            }
            finalGradients = [GradientRange(g.embed, count: c.vocabularySize * c.hiddenSize, offset: 0),
                              GradientRange(g.finalNorm, count: c.hiddenSize, offset: offset(w.finalNorm))]
            if !c.tieWordEmbeddings {
                finalGradients.append(GradientRange(g.lmHead, count: c.vocabularySize * c.hiddenSize, offset: offset(w.lmHead)))
            }
        }
        return LlamaNetwork(config: c, embed: w.embed, finalNorm: w.finalNorm, lmHead: w.lmHead, layers: layers,
                            embedGrad: g?.embed, finalNormGrad: g?.finalNorm, lmHeadGrad: c.tieWordEmbeddings ? nil : g?.lmHead,
                            layerGradients: layerGradients, finalGradients: finalGradients,
                            lmHeadBF16: rounds ? rounding(w.lmHead, rows: c.vocabularySize, columns: c.hiddenSize) : bf16Head,
                            lmHeadPacked: packFrozen && g == nil ? frozenHeadPack : nil, trainedRoundings: trainedRounded)
    }
}
