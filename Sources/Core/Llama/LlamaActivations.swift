// LlamaActivations: the forward activations a backward pass needs and the
// activation gradients, each in its own arena sized once for the largest batch.

/// Saved activations for one forward pass of up to `maxBatch × maxSeq` tokens,
/// with logits for up to `maxRows` positions. Shapes below use N ≤ B·T token rows,
/// C hidden, Q = H·hd, K = KV·hd, F intermediate, M labelled rows, V vocabulary.
public final class LlamaActivations: @unchecked Sendable {
    public let maxBatch: Int, maxSeq: Int, maxRows: Int
    /// The threads the per-thread scratch (attention's, the norms', the
    /// dequantised tiles') was sized for: a context with more would write
    /// past it, so forward and backward refuse one. (The fused head's
    /// scratch is checked on its own: `fusesHead`.)
    public let threads: Int
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
        /// What each projection's adapter saves, by projection kind.
        let adapters: AdapterActivations
    }
    let layers: [Layer]

    /// After the last layer: the final norm and output head at labelled rows.
    struct Head {
        let residOut: FloatPointer  // (N, C): the last layer's output; (M, C), the head's rows in order, when compacted
        let finalIn: FloatPointer  // (M, C): residOut at labelled rows
        let finalRstd: FloatPointer  // (M)
        let finalOut: FloatPointer  // (M, C)
        let logits: FloatPointer  // (M, V); after the loss, ∂loss/∂logits; the fused head's scratch (FusedHead.swift)
        let losses: FloatPointer  // (M)
    }
    let head: Head
    /// Floats in `head.logits`.
    let logitsCapacity: Int
    let rowIndex: UnsafeMutablePointer<Int32>  // (M) token row of each labelled row
    let rowTarget: UnsafeMutablePointer<Int32>  // (M) its target
    /// Whether the last forward ran its last layer past attention over the
    /// labelled rows alone (LastLayerRows.swift): backward follows the
    /// forward's choice, whatever the switch says when it runs.
    var compactedLastLayer = false
    /// Whether the last forward computed ∂loss/∂finalOut itself, in one pass
    /// over a frozen head (FusedHead.swift): the logits were not written,
    /// and backward starts from `grads.dFinalOut`.
    var fusedHead = false

    /// Activation gradients: one layer's worth, reused from the last layer
    /// down, and the scratch of backward's ops.
    struct Gradients {
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
        let attentionPrefixScratch: FloatPointer  // (2, B − 1, T, K): what later sequences send a shared prefix
        let normScratch: FloatPointer  // (threads, C)
        /// (N, max(C, Q, F)), (N, max LoRA rank), the widest frozen matrix's tiles; forward uses it too.
        let projectionScratch: ProjectionScratch
    }
    let grads: Gradients
    /// Floats in `grads.attentionPrefixScratch`: backward checks a batch's need against it.
    let attentionPrefixScratchCount: Int

    public var byteCount: Int { arena.byteCount + gradArena.byteCount }

    /// Stops the process, saying why, when `context` has more threads than
    /// the per-thread scratch was sized for. `fatalError` rather than
    /// `precondition`, whose message a release build does not print.
    func requireThreads(of context: ComputeContext) {
        if context.threads > threads { fatalError("a context of \(context.threads) threads over activations made for \(threads)") }
    }

    public init(network: LlamaNetwork, maxBatch: Int, maxSeq: Int, maxRows: Int? = nil, threads: Int) {
        let c = network.config
        self.maxBatch = maxBatch
        self.maxSeq = maxSeq
        let n = maxBatch * maxSeq
        let m = min(maxRows ?? n, n)
        self.maxRows = m
        self.threads = max(1, threads)
        let C = c.hiddenSize, Q = c.queryWidth, K = c.kvWidth, F = c.intermediateSize, V = c.vocabularySize
        let probs = maxBatch * c.headCount * maxSeq * maxSeq
        // The fused head's scratch lies in the logits' space: more than the logits only at tiny vocabularies.
        let logits = max(m * V, fusedHeadScratchFloats(rows: m, vocab: V, width: C, threads: self.threads))
        let forward = FloatArena.carved { arena in
            let take = { (count: Int) in FloatPointer(arena.take(count)) }
            let layers = network.layers.map { layer in
                Layer(residIn: take(n * C), attnNormOut: take(n * C), attnRstd: take(n), q: take(n * Q), k: take(n * K), v: take(n * K),
                      probs: take(probs), attnOut: take(n * Q), residMid: take(n * C), mlpNormOut: take(n * C), mlpRstd: take(n),
                      gate: take(n * F), up: take(n * F), act: take(n * F),
                      adapters: AdapterActivations(for: layer, rows: n, arena: arena))
            }
            let head = Head(residOut: take(n * C), finalIn: take(m * C), finalRstd: take(m), finalOut: take(m * C),
                            logits: take(logits), losses: take(m))
            return (layers, head)
        }
        logitsCapacity = logits
        arena = forward.arena
        (layers, head) = forward.tensors

        let t = self.threads
        let projections = network.layers.flatMap(\.projections)
        let maxRank = projections.map { p -> Int in if case let .lora(l)? = p.adapter { return l.rank } else { return 0 } }.max() ?? 0
        let tiles = projections.map { $0.weight.tileFloats(threads: t) }.max() ?? 0
        let prefixScratch = 2 * max(1, maxBatch - 1) * maxSeq * K
        attentionPrefixScratchCount = prefixScratch
        let backward = FloatArena.carved { arena in
            let take = { (count: Int) in FloatPointer(arena.take(count)) }
            return Gradients(
                dResid: take(n * C), dNormOut: take(n * C), dq: take(n * Q), dk: take(n * K), dv: take(n * K), dAttnOut: take(n * Q),
                dGate: take(n * F), dUp: take(n * F), dAct: take(n * F), dFinalOut: take(m * C), dFinalIn: take(m * C),
                attentionScratch: take(t * maxSeq * maxSeq), attentionPrefixScratch: take(prefixScratch),
                normScratch: take(t * C),
                projectionScratch: ProjectionScratch(wide: take(n * max(C, Q, F)), narrow: take(n * maxRank), tiles: take(tiles)))
        }
        gradArena = backward.arena
        grads = backward.tensors

        indexStorage = .allocate(capacity: 2 * max(m, 1))
        indexStorage.initialize(repeating: 0, count: 2 * max(m, 1))
        rowIndex = indexStorage
        rowTarget = indexStorage + max(m, 1)
        rope = RopeTable(headDimension: c.headDimension, positions: maxSeq, theta: c.ropeTheta, scaling: c.ropeScaling)
    }

    deinit { indexStorage.deallocate() }
}
