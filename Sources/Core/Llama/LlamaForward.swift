// The forward pass of a Llama network over a TokenBatch: for training, saving
// what backward needs; for inference, without dropout and saving nothing.

/// How a forward pass runs the projections' adapters.
enum ForwardMode {
    /// LoRA dropout masks drawn and applied; adapter activations saved for backward.
    case training
    /// No dropout, nothing saved for backward: evaluation, generation, perplexity.
    case inference
}

/// Logits are computed only at the rows named by the batch's targets (training)
/// or by `outputRows` (inference): the output head is a large share of FLOPs.
extension LlamaNetwork {
    /// Runs the transformer over `batch` for training and fills the logits of
    /// the labelled rows; returns the mean cross-entropy over them (0 when
    /// none), leaving ∂loss/∂logits in the activations for `backward`. `rng`
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
        for (i, r) in outputRows.enumerated() { acts.rowIndex[i] = Int32(r) }
        var rng = SeededGenerator(seed: 0)
        forwardHidden(batch, acts, rows: outputRows.count, mode: .inference, rng: &rng, context: context)
        let count = outputRows.count * config.vocabularySize
        return Array(UnsafeBufferPointer(start: acts.head.logits.base, count: count))
    }

    /// The logits of the labelled rows and their mean cross-entropy.
    private func forwardLoss(_ batch: TokenBatch, _ acts: LlamaActivations, mode: ForwardMode, rng: inout SeededGenerator,
                             context: ComputeContext) -> Float {
        var m = 0
        for (i, t) in batch.targets.enumerated() where t != TokenBatch.ignore {
            acts.rowIndex[m] = Int32(i)
            acts.rowTarget[m] = t
            m += 1
        }
        forwardHidden(batch, acts, rows: m, mode: mode, rng: &rng, context: context)
        return crossEntropyForwardBackward(
            logits: acts.head.logits, losses: acts.head.losses, targets: acts.rowTarget, rows: m,
            vocab: config.vocabularySize, gradScale: m > 0 ? 1 / Float(m) : 0, context: context)
    }

    /// Everything up to the logits at `acts.rowIndex[0..<rows]`.
    func forwardHidden(_ batch: TokenBatch, _ acts: LlamaActivations, rows m: Int, mode: ForwardMode, rng: inout SeededGenerator,
                       context ctx: ComputeContext) {
        let B = batch.batchSize, T = batch.seqLen, N = batch.rowCount
        precondition(B <= acts.maxBatch && T <= acts.maxSeq && m <= acts.maxRows, "batch exceeds activation capacity")
        let c = config, C = c.hiddenSize, Q = c.queryWidth, K = c.kvWidth, F = c.intermediateSize
        let shape = AttentionShape(lengths: batch.lengths, prefix: batch.sharedPrefix, heads: c.headCount, kvHeads: c.kvHeadCount, headDim: c.headDimension)
        let scratch = acts.grads.projectionScratch

        batch.tokens.withUnsafeBufferPointer { tokens in
            guard let ids = tokens.baseAddress else { return }
            embeddingForward(acts.layers[0].residIn, tokens: ids, table: embed, n: N, c: C)
        }
        for (l, w) in layers.enumerated() {
            let a = acts.layers[l]
            func project(_ p: Projection, out: FloatPointer, inp: FloatPointer) {
                switch mode {
                case .training: projectionForward(p, out: out, inp: inp, n: N, saved: a.adapters, scratch: scratch, rng: &rng, context: ctx)
                case .inference: projectionInference(p, out: out, inp: inp, n: N, scratch: scratch, context: ctx)
                }
            }
            let out = l + 1 < c.layerCount ? acts.layers[l + 1].residIn : acts.head.residOut
            // Attention block: residMid = residIn + o(attention(rope(q), rope(k), v))
            rmsNormForward(a.attnNormOut, rstd: a.attnRstd, a.residIn, weight: w.attnNorm, n: N, c: C, eps: c.rmsNormEps, context: ctx)
            sharingBFloat16Copy(of: a.attnNormOut, rows: N, columns: C) {
                project(w.q, out: a.q, inp: a.attnNormOut)
                project(w.k, out: a.k, inp: a.attnNormOut)
                project(w.v, out: a.v, inp: a.attnNormOut)
            }
            batch.positions.withUnsafeBufferPointer { positions in
                guard let pos = positions.baseAddress else { return }
                ropeForward(a.q, table: acts.rope, positions: pos, rows: N, heads: c.headCount, rowStride: Q, context: ctx)
                ropeForward(a.k, table: acts.rope, positions: pos, rows: N, heads: c.kvHeadCount, rowStride: K, context: ctx)
            }
            attentionForward(a.attnOut, probs: a.probs, q: a.q, k: a.k, v: a.v, shape: shape, context: ctx)
            project(w.o, out: a.residMid, inp: a.attnOut)
            add(a.residMid, a.residIn, count: N * C, context: ctx)
            // MLP block: out = residMid + down(silu(gate(x)) ⊙ up(x)), x = norm(residMid)
            rmsNormForward(a.mlpNormOut, rstd: a.mlpRstd, a.residMid, weight: w.mlpNorm, n: N, c: C, eps: c.rmsNormEps, context: ctx)
            sharingBFloat16Copy(of: a.mlpNormOut, rows: N, columns: C) {
                project(w.gate, out: a.gate, inp: a.mlpNormOut)
                project(w.up, out: a.up, inp: a.mlpNormOut)
            }
            swigluForward(a.act, gate: a.gate, up: a.up, count: N * F, context: ctx)
            project(w.down, out: out, inp: a.act)
            add(out, a.residMid, count: N * C, context: ctx)
        }
        // Final norm and output head at the selected rows only.
        for r in 0..<m {
            (acts.head.finalIn.base + r * C).update(from: acts.head.residOut.base + Int(acts.rowIndex[r]) * C, count: C)
        }
        rmsNormForward(acts.head.finalOut, rstd: acts.head.finalRstd, acts.head.finalIn, weight: finalNorm, n: m, c: C, eps: c.rmsNormEps, context: ctx)
        head.multiply(out: acts.head.logits, inp: acts.head.finalOut, n: m, context: ctx)
    }
}
