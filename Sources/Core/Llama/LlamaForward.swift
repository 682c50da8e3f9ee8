// The forward pass of a Llama network over a TokenBatch: for training, saving
// what backward needs; for inference, without dropout and saving nothing.

/// How a forward pass runs the projections' adapters.
enum ForwardMode {
    /// LoRA dropout masks drawn and applied; adapter activations saved for backward.
    case training
    /// No dropout, nothing saved for backward: evaluation, generation, perplexity.
    case inference
}

extension NetworkLayer {
    /// The MLP block's branch, without its residual: out (n, C) =
    /// down(silu(gate(x)) ⊙ up(x)), x = norm(inp) into `normOut` (and `rstd`),
    /// `gate`, `up` and `act` (n, F) kept. `project` runs one projection over
    /// its rows (training's saves what backward needs; inference's not).
    func mlpForward(
        out: FloatPointer, inp: FloatPointer, normOut: FloatPointer, rstd: FloatPointer, gate: FloatPointer, up: FloatPointer,
        act: FloatPointer, rows n: Int, config c: LlamaConfiguration, context: ComputeContext,
        project: (Projection, FloatPointer, FloatPointer, Int) -> Void
    ) {
        rmsNormForward(normOut, rstd: rstd, inp, weight: mlpNorm, n: n, c: c.hiddenSize, eps: c.rmsNormEps, context: context)
        sharingBFloat16Copy(of: normOut, rows: n, columns: c.hiddenSize) {
            project(self.gate, gate, normOut, n)
            project(self.up, up, normOut, n)
        }
        swigluForward(act, gate: gate, up: up, count: n * c.intermediateSize, context: context)
        project(down, out, act, n)
    }
}

/// Logits are computed only at the rows named by the batch's targets (training)
/// or by `outputRows` (inference): the output head is a large share of FLOPs.
extension LlamaNetwork {
    /// Runs the transformer over `batch` for training and fills the logits of
    /// the labelled rows; returns the mean cross-entropy over them (0 when
    /// none), leaving ∂loss/∂logits in the activations for `backward` — or,
    /// for a frozen head taken in one pass (`fusesHead`, FusedHead.swift),
    /// ∂loss/∂(the final norm's output), the logits not written. `rng`
    /// draws dropout masks.
    @discardableResult
    public func forward(_ batch: TokenBatch, _ acts: LlamaActivations, rng: inout SeededGenerator, context: ComputeContext) -> Float {
        forwardLoss(batch, acts, mode: .training, rng: &rng, context: context)
    }

    /// `forward` with masks from a fixed seed: for networks without dropout (tests).
    @discardableResult
    public func forward(_ batch: TokenBatch, _ acts: LlamaActivations, context: ComputeContext) -> Float {
        var rng = SeededGenerator(seed: 0)
        return forward(batch, acts, rng: &rng, context: context)
    }

    /// The mean cross-entropy over the labelled rows of `batch` in inference
    /// mode (no dropout; not for `backward`): perplexity.
    public func inferenceLoss(_ batch: TokenBatch, _ acts: LlamaActivations, context: ComputeContext) -> Float {
        var rng = SeededGenerator(seed: 0)
        return forwardLoss(batch, acts, mode: .inference, rng: &rng, context: context)
    }

    /// Runs the transformer over `batch` in inference mode and returns the
    /// logits (rows, V) at the given token rows (indices into the batch's
    /// rows).
    public func logits(_ batch: TokenBatch, outputRows: [Int], _ acts: LlamaActivations, context: ComputeContext) -> [Float] {
        precondition(outputRows.count <= acts.maxRows, "\(outputRows.count) output rows exceed the activations' \(acts.maxRows)")
        for (i, r) in outputRows.enumerated() { acts.rowIndex[i] = Int32(r) }
        var rng = SeededGenerator(seed: 0)
        forwardHidden(batch, acts, rows: outputRows.count, mode: .inference, rng: &rng, context: context)
        let count = outputRows.count * config.vocabularySize
        return Array(UnsafeBufferPointer(start: acts.head.logits.base, count: count))
    }

    /// The mean cross-entropy of the labelled rows, through their logits or
    /// in one pass over a frozen head (`fusesHead`).
    private func forwardLoss(_ batch: TokenBatch, _ acts: LlamaActivations, mode: ForwardMode, rng: inout SeededGenerator,
                             context: ComputeContext) -> Float {
        var m = 0
        for (i, t) in batch.targets.enumerated() where t != TokenBatch.ignore {
            precondition(m < acts.maxRows, "more labelled rows than the activations' \(acts.maxRows)")
            acts.rowIndex[m] = Int32(i)
            acts.rowTarget[m] = t
            m += 1
        }
        let fuses = fusesHead(rows: m, mode: mode, acts, context: context)
        forwardHidden(batch, acts, rows: m, mode: mode, rng: &rng, context: context, headProduct: !fuses)
        if fuses {
            // `fusesHead` checked that the head is dense; the logits were not written, so there is no way back.
            guard let loss = head.withDenseRows({ w in
                fusedHeadCrossEntropy(inp: acts.head.finalOut.base, weight: w, vocab: config.vocabularySize, width: config.hiddenSize,
                                      targets: acts.rowTarget, rows: m, gradScale: 1 / Float(m), losses: acts.head.losses.base,
                                      dinp: acts.grads.dFinalOut.base, scratch: acts.head.logits.base, context: context)
            }) else { preconditionFailure("fused head over a head that is not dense") }
            return loss
        }
        return crossEntropyForwardBackward(
            logits: acts.head.logits, losses: acts.head.losses, targets: acts.rowTarget, rows: m,
            vocab: config.vocabularySize, gradScale: m > 0 ? 1 / Float(m) : 0, context: context)
    }

    /// Whether a training forward over `m` labelled rows computes the loss
    /// and ∂loss/∂finalOut in one pass over the head (FusedHead.swift): a
    /// frozen Float32 head in f32 products, the switch on, and the logits'
    /// space large enough for its scratch (the logits are not written).
    /// That space is sized for the activations' threads; a context of fewer
    /// can need a few Floats more at small vocabularies (each thread's parts
    /// are rounded to cache lines), and then takes the two products. Not in
    /// bf16: there oneDNN's one-thread products over a block's plain bf16
    /// rows ran at ~106 GFLOP/s a core, and the pass took about as long as
    /// the two products over the head's packed copies (docs/benchmarks.md,
    /// "Issue 13, forty-sixth stop").
    private func fusesHead(rows m: Int, mode: ForwardMode, _ acts: LlamaActivations, context: ComputeContext) -> Bool {
        guard mode == .training, m > 0, headGrad == nil, fusedHead.isOn, ProductPrecision.current == .f32,
              case .dense = head else { return false }
        let c = config
        return fusedHeadScratchFloats(rows: m, vocab: c.vocabularySize, width: c.hiddenSize, threads: context.threads)
            <= acts.logitsCapacity
    }

    /// Everything up to the logits at `acts.rowIndex[0..<rows]`, or up to
    /// the final norm's output there without `headProduct`.
    func forwardHidden(_ batch: TokenBatch, _ acts: LlamaActivations, rows m: Int, mode: ForwardMode, rng: inout SeededGenerator,
                       context ctx: ComputeContext, headProduct: Bool = true) {
        let B = batch.batchSize, T = batch.seqLen, N = batch.rowCount
        precondition(B <= acts.maxBatch && T <= acts.maxSeq && m <= acts.maxRows, "batch exceeds activation capacity")
        acts.requireThreads(of: ctx)
        let c = config, C = c.hiddenSize, Q = c.queryWidth, K = c.kvWidth
        let shape = AttentionShape(lengths: batch.lengths, prefix: batch.sharedPrefix, heads: c.headCount, kvHeads: c.kvHeadCount, headDim: c.headDimension)
        let scratch = acts.grads.projectionScratch

        batch.tokens.withUnsafeBufferPointer { tokens in
            guard let ids = tokens.baseAddress else { return }
            embeddingForward(acts.layers[0].residIn, tokens: ids, table: embed, n: N, c: C)
        }
        // Past its attention the last layer runs only the head's rows, when they are fewer (LastLayerRows.swift).
        let compact = Self.compactsLastLayer(rows: m, of: N, acts.rowIndex)
        acts.compactedLastLayer = compact
        for (l, w) in layers.enumerated() {
            let a = acts.layers[l]
            // Rows after attention: N, or the head's m in a compacted last layer.
            let n = compact && l + 1 == c.layerCount ? m : N
            func project(_ p: Projection, out: FloatPointer, inp: FloatPointer, rows: Int) {
                switch mode {
                case .training: projectionForward(p, out: out, inp: inp, n: rows, saved: a.adapters, scratch: scratch, rng: &rng, context: ctx)
                case .inference: projectionInference(p, out: out, inp: inp, n: rows, scratch: scratch, context: ctx)
                }
            }
            let out = l + 1 < c.layerCount ? acts.layers[l + 1].residIn : acts.head.residOut
            // Attention block: residMid = residIn + o(attention(rope(q), rope(k), v))
            rmsNormForward(a.attnNormOut, rstd: a.attnRstd, a.residIn, weight: w.attnNorm, n: N, c: C, eps: c.rmsNormEps, context: ctx)
            sharingBFloat16Copy(of: a.attnNormOut, rows: N, columns: C) {
                project(w.q, out: a.q, inp: a.attnNormOut, rows: N)
                project(w.k, out: a.k, inp: a.attnNormOut, rows: N)
                project(w.v, out: a.v, inp: a.attnNormOut, rows: N)
            }
            batch.positions.withUnsafeBufferPointer { positions in
                guard let pos = positions.baseAddress else { return }
                ropeForward(a.q, table: acts.rope, positions: pos, rows: N, heads: c.headCount, rowStride: Q, context: ctx)
                ropeForward(a.k, table: acts.rope, positions: pos, rows: N, heads: c.kvHeadCount, rowStride: K, context: ctx)
            }
            attentionForward(a.attnOut, probs: a.probs, q: a.q, k: a.k, v: a.v, shape: shape, context: ctx)
            if n < N { gatherRows(a.attnOut, width: Q, acts.rowIndex, count: n) }
            project(w.o, out: a.residMid, inp: a.attnOut, rows: n)
            if n < N {
                addGatheredRows(a.residMid, a.residIn, width: C, acts.rowIndex, count: n)
            } else {
                add(a.residMid, a.residIn, count: N * C, context: ctx)
            }
            // MLP block: out = residMid + down(silu(gate(x)) ⊙ up(x)), x = norm(residMid)
            w.mlpForward(out: out, inp: a.residMid, normOut: a.mlpNormOut, rstd: a.mlpRstd, gate: a.gate, up: a.up, act: a.act,
                         rows: n, config: c, context: ctx) { project($0, out: $1, inp: $2, rows: $3) }
            add(out, a.residMid, count: n * C, context: ctx)
        }
        // Final norm and output head at the selected rows only (already gathered in a compacted last layer).
        for r in 0..<m {
            let row = compact ? r : Int(acts.rowIndex[r])
            (acts.head.finalIn.base + r * C).update(from: acts.head.residOut.base + row * C, count: C)
        }
        rmsNormForward(acts.head.finalOut, rstd: acts.head.finalRstd, acts.head.finalIn, weight: finalNorm, n: m, c: C, eps: c.rmsNormEps, context: ctx)
        acts.fusedHead = !headProduct
        if headProduct { head.multiply(out: acts.head.logits, inp: acts.head.finalOut, n: m, context: ctx) }
    }
}
