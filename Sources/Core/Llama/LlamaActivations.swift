// LlamaActivations: the forward activations a backward pass needs and the
// activation gradients, each in its own arena sized once for the largest batch.

/// Saved activations for one forward pass of up to `maxBatch × maxSeq` tokens,
/// with logits for up to `maxRows` positions. Shapes below use N = B·T tokens,
/// C hidden, Q = H·hd, K = KV·hd, F intermediate, M labelled rows, V vocabulary.
public final class LlamaActivations: @unchecked Sendable {
    public let maxBatch: Int, maxSeq: Int, maxRows: Int
    let rope: RopeTable
    private let arena: FloatArena
    private let gradArena: FloatArena
    private let indexStorage: UnsafeMutablePointer<Int32>

    /// Per layer: the residual stream entering it (N, C), and inside it:
    struct Layer {
        let residIn: FloatPointer  // (N, C)
        let attnNormOut: FloatPointer  // (N, C)
        let attnRstd: FloatPointer  // (N)
        let q: FloatPointer  // (N, Q) after RoPE
        let k: FloatPointer  // (N, K) after RoPE
        let v: FloatPointer  // (N, K)
        let probs: FloatPointer  // (B, H, T, T)
        let attnOut: FloatPointer  // (N, Q)
        let residMid: FloatPointer  // (N, C)
        let mlpNormOut: FloatPointer  // (N, C)
        let mlpRstd: FloatPointer  // (N)
        let gate: FloatPointer  // (N, F)
        let up: FloatPointer  // (N, F)
        let act: FloatPointer  // (N, F)
        /// What each projection's adapter saves, in `NetworkLayer.projections` order.
        let adapters: [ProjectionActivations]
    }
    let layers: [Layer]
    let residOut: FloatPointer  // (N, C): the last layer's output
    let finalIn: FloatPointer  // (M, C): residOut at labelled rows
    let finalRstd: FloatPointer  // (M)
    let finalOut: FloatPointer  // (M, C)
    let logits: FloatPointer  // (M, V); after the loss, ∂loss/∂logits
    let losses: FloatPointer  // (M)
    let rowIndex: UnsafeMutablePointer<Int32>  // (M) token row of each labelled row
    let rowTarget: UnsafeMutablePointer<Int32>  // (M) its target

    // Activation gradients: one layer's worth, reused from the last layer down.
    let dResid: FloatPointer  // (N, C)
    let dNormOut: FloatPointer  // (N, C)
    let dq: FloatPointer  // (N, Q)
    let dk: FloatPointer  // (N, K)
    let dv: FloatPointer  // (N, K)
    let dAttnOut: FloatPointer  // (N, Q)
    let dGate: FloatPointer  // (N, F)
    let dUp: FloatPointer  // (N, F)
    let dAct: FloatPointer  // (N, F)
    let dFinalOut: FloatPointer  // (M, C)
    let dFinalIn: FloatPointer  // (M, C)
    let attentionScratch: FloatPointer  // (threads, T, T)
    let normScratch: FloatPointer  // (threads, C)
    let projectionScratch: ProjectionScratch

    public var byteCount: Int { arena.byteCount + gradArena.byteCount }

    public init(network: LlamaNetwork, maxBatch: Int, maxSeq: Int, maxRows: Int? = nil, threads: Int) {
        let c = network.config
        self.maxBatch = maxBatch
        self.maxSeq = maxSeq
        let n = maxBatch * maxSeq
        let m = min(maxRows ?? n, n)
        self.maxRows = m
        let C = c.hiddenSize, Q = c.queryWidth, K = c.kvWidth, F = c.intermediateSize
        let probs = maxBatch * c.headCount * maxSeq * maxSeq
        let perLayer = [n * C, n * C, n, n * Q, n * K, n * K, probs, n * Q, n * C, n * C, n, n * F, n * F, n * F]
        let adapterSizes = network.layers.flatMap { $0.projections.flatMap { ProjectionActivations.sizes(for: $0, rows: n) } }
        let forwardSizes = Array(repeating: perLayer, count: c.layerCount).flatMap { $0 } + adapterSizes
            + [n * C, m * C, m, m * C, m * c.vocabularySize, m]
        arena = FloatArena(capacity: FloatArena.size(for: forwardSizes))
        layers = network.layers.map { [arena] layer in
            Layer(residIn: FloatPointer(arena.take(n * C)), attnNormOut: FloatPointer(arena.take(n * C)),
                  attnRstd: FloatPointer(arena.take(n)), q: FloatPointer(arena.take(n * Q)),
                  k: FloatPointer(arena.take(n * K)), v: FloatPointer(arena.take(n * K)),
                  probs: FloatPointer(arena.take(probs)), attnOut: FloatPointer(arena.take(n * Q)),
                  residMid: FloatPointer(arena.take(n * C)), mlpNormOut: FloatPointer(arena.take(n * C)),
                  mlpRstd: FloatPointer(arena.take(n)), gate: FloatPointer(arena.take(n * F)),
                  up: FloatPointer(arena.take(n * F)), act: FloatPointer(arena.take(n * F)),
                  adapters: layer.projections.map { ProjectionActivations(for: $0, rows: n, arena: arena) })
        }
        residOut = FloatPointer(arena.take(n * C))
        finalIn = FloatPointer(arena.take(m * C))
        finalRstd = FloatPointer(arena.take(m))
        finalOut = FloatPointer(arena.take(m * C))
        logits = FloatPointer(arena.take(m * c.vocabularySize))
        losses = FloatPointer(arena.take(m))

        let t = max(1, threads)
        let projections = network.layers.flatMap(\.projections)
        let maxRank = projections.map { p -> Int in if case let .lora(l)? = p.adapter { return l.rank } else { return 0 } }.max() ?? 0
        let wide = n * max(C, Q, F), narrow = n * maxRank
        let tiles = projections.map { $0.weight.tileFloats(threads: t) }.max() ?? 0
        let gradSizes = [n * C, n * C, n * Q, n * K, n * K, n * Q, n * F, n * F, n * F, m * C, m * C, t * maxSeq * maxSeq, t * C,
                         wide, narrow, tiles]
        gradArena = FloatArena(capacity: FloatArena.size(for: gradSizes))
        dResid = FloatPointer(gradArena.take(n * C))
        dNormOut = FloatPointer(gradArena.take(n * C))
        dq = FloatPointer(gradArena.take(n * Q))
        dk = FloatPointer(gradArena.take(n * K))
        dv = FloatPointer(gradArena.take(n * K))
        dAttnOut = FloatPointer(gradArena.take(n * Q))
        dGate = FloatPointer(gradArena.take(n * F))
        dUp = FloatPointer(gradArena.take(n * F))
        dAct = FloatPointer(gradArena.take(n * F))
        dFinalOut = FloatPointer(gradArena.take(m * C))
        dFinalIn = FloatPointer(gradArena.take(m * C))
        attentionScratch = FloatPointer(gradArena.take(t * maxSeq * maxSeq))
        normScratch = FloatPointer(gradArena.take(t * C))
        projectionScratch = ProjectionScratch(wide: FloatPointer(gradArena.take(wide)), narrow: FloatPointer(gradArena.take(narrow)),
                                              tiles: FloatPointer(gradArena.take(tiles)))

        indexStorage = .allocate(capacity: 2 * max(m, 1))
        indexStorage.initialize(repeating: 0, count: 2 * max(m, 1))
        rowIndex = indexStorage
        rowTarget = indexStorage + max(m, 1)
        rope = RopeTable(headDimension: c.headDimension, positions: maxSeq, theta: c.ropeTheta, scaling: c.ropeScaling)
    }

    deinit { indexStorage.deallocate() }
}
