// The forward pass of a Llama network over a TokenBatch, saving what backward needs.

/// Logits are computed only at the rows named by the batch's targets (training)
/// or by `outputRows` (inference): the output head is a large share of FLOPs.
extension LlamaNetwork {
    /// Runs the transformer over `batch` and fills the logits of the labelled
    /// rows; returns the mean cross-entropy over them (0 when none), leaving
    /// ∂loss/∂logits in `acts.logits` for `backward`. `rng` draws dropout masks.
    @discardableResult
    public func forward(_ batch: TokenBatch, _ acts: LlamaActivations, rng: inout SeededGenerator, context: ComputeContext) -> Float {
        var m = 0
        for (i, t) in batch.targets.enumerated() where t != TokenBatch.ignore {
            acts.rowIndex[m] = Int32(i)
            acts.rowTarget[m] = t
            m += 1
        }
        forwardHidden(batch, acts, rows: m, rng: &rng, context: context)
        return crossEntropyForwardBackward(
            logits: acts.logits, losses: acts.losses, targets: acts.rowTarget, rows: m,
            vocab: config.vocabularySize, gradScale: m > 0 ? 1 / Float(m) : 0, context: context)
    }

    /// `forward` for networks without dropout (inference, tests).
    @discardableResult
    public func forward(_ batch: TokenBatch, _ acts: LlamaActivations, context: ComputeContext) -> Float {
        var rng = SeededGenerator(seed: 0)
        return forward(batch, acts, rng: &rng, context: context)
    }

    /// Runs the transformer over `batch` and returns the logits (rows, V) at the
    /// given token rows (indices into the flattened B·T positions).
    public func logits(_ batch: TokenBatch, outputRows: [Int], _ acts: LlamaActivations, context: ComputeContext) -> [Float] {
        for (i, r) in outputRows.enumerated() { acts.rowIndex[i] = Int32(r) }
        var rng = SeededGenerator(seed: 0)
        forwardHidden(batch, acts, rows: outputRows.count, rng: &rng, context: context)
        let count = outputRows.count * config.vocabularySize
        return Array(UnsafeBufferPointer(start: acts.logits.base, count: count))
    }

    /// Everything up to the logits at `acts.rowIndex[0..<rows]`.
    func forwardHidden(_ batch: TokenBatch, _ acts: LlamaActivations, rows m: Int, rng: inout SeededGenerator, context ctx: ComputeContext) {
        let B = batch.batchSize, T = batch.seqLen, N = B * T
        precondition(B <= acts.maxBatch && T <= acts.maxSeq && m <= acts.maxRows, "batch exceeds activation capacity")
        let c = config, C = c.hiddenSize, Q = c.queryWidth, K = c.kvWidth, F = c.intermediateSize
        let shape = AttentionShape(batch: B, seqLen: T, heads: c.headCount, kvHeads: c.kvHeadCount, headDim: c.headDimension)
        let scratch = acts.projectionScratch

        batch.tokens.withUnsafeBufferPointer { tokens in
            guard let ids = tokens.baseAddress else { return }
            embeddingForward(acts.layers[0].residIn, tokens: ids, table: embed, n: N, c: C)
        }
        for (l, w) in layers.enumerated() {
            let a = acts.layers[l], saved = a.adapters
            let out = l + 1 < c.layerCount ? acts.layers[l + 1].residIn : acts.residOut
            // Attention block: residMid = residIn + o(attention(rope(q), rope(k), v))
            rmsNormForward(a.attnNormOut, rstd: a.attnRstd, a.residIn, weight: w.attnNorm, n: N, c: C, eps: c.rmsNormEps, context: ctx)
            projectionForward(w.q, out: a.q, inp: a.attnNormOut, n: N, saved: saved[0], scratch: scratch, rng: &rng, context: ctx)
            projectionForward(w.k, out: a.k, inp: a.attnNormOut, n: N, saved: saved[1], scratch: scratch, rng: &rng, context: ctx)
            projectionForward(w.v, out: a.v, inp: a.attnNormOut, n: N, saved: saved[2], scratch: scratch, rng: &rng, context: ctx)
            ropeForward(a.q, table: acts.rope, rows: N, seqLen: T, heads: c.headCount, rowStride: Q, context: ctx)
            ropeForward(a.k, table: acts.rope, rows: N, seqLen: T, heads: c.kvHeadCount, rowStride: K, context: ctx)
            attentionForward(a.attnOut, probs: a.probs, q: a.q, k: a.k, v: a.v, shape: shape, context: ctx)
            projectionForward(w.o, out: a.residMid, inp: a.attnOut, n: N, saved: saved[3], scratch: scratch, rng: &rng, context: ctx)
            add(a.residMid, a.residIn, count: N * C, context: ctx)
            // MLP block: out = residMid + down(silu(gate(x)) ⊙ up(x)), x = norm(residMid)
            rmsNormForward(a.mlpNormOut, rstd: a.mlpRstd, a.residMid, weight: w.mlpNorm, n: N, c: C, eps: c.rmsNormEps, context: ctx)
            projectionForward(w.gate, out: a.gate, inp: a.mlpNormOut, n: N, saved: saved[4], scratch: scratch, rng: &rng, context: ctx)
            projectionForward(w.up, out: a.up, inp: a.mlpNormOut, n: N, saved: saved[5], scratch: scratch, rng: &rng, context: ctx)
            swigluForward(a.act, gate: a.gate, up: a.up, count: N * F, context: ctx)
            projectionForward(w.down, out: out, inp: a.act, n: N, saved: saved[6], scratch: scratch, rng: &rng, context: ctx)
            add(out, a.residMid, count: N * C, context: ctx)
        }
        // Final norm and output head at the selected rows only.
        for r in 0..<m {
            (acts.finalIn.base + r * C).update(from: acts.residOut.base + Int(acts.rowIndex[r]) * C, count: C)
        }
        rmsNormForward(acts.finalOut, rstd: acts.finalRstd, acts.finalIn, weight: finalNorm, n: m, c: C, eps: c.rmsNormEps, context: ctx)
        linearForward(acts.logits.base, acts.finalOut.base, lmHead.base, n: m, inDim: C, outDim: c.vocabularySize, context: ctx)
    }
}
