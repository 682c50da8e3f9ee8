// The forward pass of a Llama model over a TokenBatch, saving what backward needs.

/// Logits are computed only at the rows named by the batch's targets (training)
/// or by `outputRows` (inference): the output head is a large share of FLOPs.
extension LlamaModel {
    /// Runs the transformer over `batch` and fills the logits of the labelled
    /// rows; returns the mean cross-entropy over them (0 when none), leaving
    /// ∂loss/∂logits in `acts.logits` for `backward`.
    @discardableResult
    public func forward(_ batch: TokenBatch, _ acts: LlamaActivations, context: ComputeContext) -> Float {
        var m = 0
        for (i, t) in batch.targets.enumerated() where t != TokenBatch.ignore {
            acts.rowIndex[m] = Int32(i)
            acts.rowTarget[m] = t
            m += 1
        }
        forwardHidden(batch, acts, rows: m, context: context)
        return crossEntropyForwardBackward(
            logits: acts.logits, losses: acts.losses, targets: acts.rowTarget, rows: m,
            vocab: config.vocabularySize, gradScale: m > 0 ? 1 / Float(m) : 0, context: context)
    }

    /// Runs the transformer over `batch` and returns the logits (rows, V) at the
    /// given token rows (indices into the flattened B·T positions).
    public func logits(_ batch: TokenBatch, outputRows: [Int], _ acts: LlamaActivations, context: ComputeContext) -> [Float] {
        for (i, r) in outputRows.enumerated() { acts.rowIndex[i] = Int32(r) }
        forwardHidden(batch, acts, rows: outputRows.count, context: context)
        let count = outputRows.count * config.vocabularySize
        return Array(UnsafeBufferPointer(start: acts.logits.base, count: count))
    }

    /// Everything up to the logits at `acts.rowIndex[0..<rows]`.
    func forwardHidden(_ batch: TokenBatch, _ acts: LlamaActivations, rows m: Int, context ctx: ComputeContext) {
        let B = batch.batchSize, T = batch.seqLen, N = B * T
        precondition(B <= acts.maxBatch && T <= acts.maxSeq && m <= acts.maxRows, "batch exceeds activation capacity")
        let c = config, C = c.hiddenSize, Q = c.queryWidth, K = c.kvWidth, F = c.intermediateSize
        let shape = AttentionShape(batch: B, seqLen: T, heads: c.headCount, kvHeads: c.kvHeadCount, headDim: c.headDimension)

        batch.tokens.withUnsafeBufferPointer { tokens in
            embeddingForward(acts.layers[0].residIn, tokens: tokens.baseAddress!, table: weights.embed, n: N, c: C)
        }
        for (l, w) in weights.layers.enumerated() {
            let a = acts.layers[l]
            let out = l + 1 < c.layerCount ? acts.layers[l + 1].residIn : acts.residOut
            // Attention block: residMid = residIn + o(attention(rope(q), rope(k), v))
            rmsNormForward(a.attnNormOut, rstd: a.attnRstd, a.residIn, weight: w.attnNorm, n: N, c: C, eps: c.rmsNormEps, context: ctx)
            linearForward(a.q.base, a.attnNormOut.base, w.q.base, n: N, inDim: C, outDim: Q)
            linearForward(a.k.base, a.attnNormOut.base, w.k.base, n: N, inDim: C, outDim: K)
            linearForward(a.v.base, a.attnNormOut.base, w.v.base, n: N, inDim: C, outDim: K)
            ropeForward(a.q, table: acts.rope, rows: N, seqLen: T, heads: c.headCount, rowStride: Q, context: ctx)
            ropeForward(a.k, table: acts.rope, rows: N, seqLen: T, heads: c.kvHeadCount, rowStride: K, context: ctx)
            attentionForward(a.attnOut, probs: a.probs, q: a.q, k: a.k, v: a.v, shape: shape, context: ctx)
            a.residMid.base.update(from: a.residIn.base, count: N * C)
            linearForward(a.residMid.base, a.attnOut.base, w.o.base, n: N, inDim: Q, outDim: C, accumulate: true)
            // MLP block: out = residMid + down(silu(gate(x)) ⊙ up(x)), x = norm(residMid)
            rmsNormForward(a.mlpNormOut, rstd: a.mlpRstd, a.residMid, weight: w.mlpNorm, n: N, c: C, eps: c.rmsNormEps, context: ctx)
            linearForward(a.gate.base, a.mlpNormOut.base, w.gate.base, n: N, inDim: C, outDim: F)
            linearForward(a.up.base, a.mlpNormOut.base, w.up.base, n: N, inDim: C, outDim: F)
            swigluForward(a.act, gate: a.gate, up: a.up, count: N * F, context: ctx)
            out.base.update(from: a.residMid.base, count: N * C)
            linearForward(out.base, a.act.base, w.down.base, n: N, inDim: F, outDim: C, accumulate: true)
        }
        // Final norm and output head at the selected rows only.
        for r in 0..<m {
            (acts.finalIn.base + r * C).update(from: acts.residOut.base + Int(acts.rowIndex[r]) * C, count: C)
        }
        rmsNormForward(acts.finalOut, rstd: acts.finalRstd, acts.finalIn, weight: weights.finalNorm, n: m, c: C, eps: c.rmsNormEps, context: ctx)
        linearForward(acts.logits.base, acts.finalOut.base, weights.lmHead.base, n: m, inDim: C, outDim: c.vocabularySize)
    }
}
