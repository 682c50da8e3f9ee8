// The backward pass of a Llama model: `forward` in exact reverse order,
// accumulating parameter gradients into `grads` (same layout as the weights).

extension LlamaModel {
    /// Backpropagates the loss of the last `forward(batch, acts)` into `grads`.
    /// Gradients accumulate (+=): the caller zeroes them once per step.
    /// Returns Σ g² over all gradient tensors, summed layer by layer while each
    /// layer's gradients are still in cache (for clipping without another pass).
    @discardableResult
    public func backward(_ batch: TokenBatch, _ acts: LlamaActivations, grads g: LlamaWeights, context ctx: ComputeContext) -> Double {
        let B = batch.batchSize, T = batch.seqLen, N = B * T
        let c = config, C = c.hiddenSize, Q = c.queryWidth, K = c.kvWidth, F = c.intermediateSize
        let m = batch.labelledCount
        let shape = AttentionShape(batch: B, seqLen: T, heads: c.headCount, kvHeads: c.kvHeadCount, headDim: c.headDimension)

        // Output head and final norm, at the labelled rows; then scatter into the stream.
        linearBackward(dinp: acts.dFinalOut.base, dweight: g.lmHead.base, dout: acts.logits.base, inp: acts.finalOut.base,
                       weight: weights.lmHead.base, n: m, inDim: C, outDim: c.vocabularySize, accumulateInput: false)
        acts.dFinalIn.base.update(repeating: 0, count: m * C)
        rmsNormBackward(dinp: acts.dFinalIn, dweight: g.finalNorm, dout: acts.dFinalOut, inp: acts.finalIn, weight: weights.finalNorm,
                        rstd: acts.finalRstd, n: m, c: C, scratch: acts.normScratch, context: ctx)
        acts.dResid.base.update(repeating: 0, count: N * C)
        for r in 0..<m {
            let dst = acts.dResid.base + Int(acts.rowIndex[r]) * C, src = acts.dFinalIn.base + r * C
            for i in 0..<C { dst[i] += src[i] }
        }

        var squares: Double = 0
        for l in stride(from: c.layerCount - 1, through: 0, by: -1) {
            let a = acts.layers[l], w = weights.layers[l], gw = g.layers[l]
            // MLP block; dResid holds ∂L/∂out and becomes ∂L/∂residMid.
            linearBackward(dinp: acts.dAct.base, dweight: gw.down.base, dout: acts.dResid.base, inp: a.act.base,
                           weight: w.down.base, n: N, inDim: F, outDim: C, accumulateInput: false)
            swigluBackward(dgate: acts.dGate, dup: acts.dUp, dout: acts.dAct, gate: a.gate, up: a.up, count: N * F, context: ctx)
            linearBackward(dinp: acts.dNormOut.base, dweight: gw.gate.base, dout: acts.dGate.base, inp: a.mlpNormOut.base,
                           weight: w.gate.base, n: N, inDim: C, outDim: F, accumulateInput: false)
            linearBackward(dinp: acts.dNormOut.base, dweight: gw.up.base, dout: acts.dUp.base, inp: a.mlpNormOut.base,
                           weight: w.up.base, n: N, inDim: C, outDim: F)
            rmsNormBackward(dinp: acts.dResid, dweight: gw.mlpNorm, dout: acts.dNormOut, inp: a.residMid, weight: w.mlpNorm,
                            rstd: a.mlpRstd, n: N, c: C, scratch: acts.normScratch, context: ctx)
            // Attention block; dResid becomes ∂L/∂residIn.
            linearBackward(dinp: acts.dAttnOut.base, dweight: gw.o.base, dout: acts.dResid.base, inp: a.attnOut.base,
                           weight: w.o.base, n: N, inDim: Q, outDim: C, accumulateInput: false)
            attentionBackward(dq: acts.dq, dk: acts.dk, dv: acts.dv, dout: acts.dAttnOut, probs: a.probs, q: a.q, k: a.k, v: a.v,
                              shape: shape, scratch: acts.attentionScratch, context: ctx)
            ropeBackward(acts.dq, table: acts.rope, rows: N, seqLen: T, heads: c.headCount, rowStride: Q, context: ctx)
            ropeBackward(acts.dk, table: acts.rope, rows: N, seqLen: T, heads: c.kvHeadCount, rowStride: K, context: ctx)
            linearBackward(dinp: acts.dNormOut.base, dweight: gw.q.base, dout: acts.dq.base, inp: a.attnNormOut.base,
                           weight: w.q.base, n: N, inDim: C, outDim: Q, accumulateInput: false)
            linearBackward(dinp: acts.dNormOut.base, dweight: gw.k.base, dout: acts.dk.base, inp: a.attnNormOut.base,
                           weight: w.k.base, n: N, inDim: C, outDim: K)
            linearBackward(dinp: acts.dNormOut.base, dweight: gw.v.base, dout: acts.dv.base, inp: a.attnNormOut.base,
                           weight: w.v.base, n: N, inDim: C, outDim: K)
            rmsNormBackward(dinp: acts.dResid, dweight: gw.attnNorm, dout: acts.dNormOut, inp: a.residIn, weight: w.attnNorm,
                            rstd: a.attnRstd, n: N, c: C, scratch: acts.normScratch, context: ctx)
            // A layer's tensors are contiguous in the layout, from attnNorm to the end of down.
            squares += sumOfSquares(gw.attnNorm, count: gw.down.base + C * F - gw.attnNorm.base, context: ctx)
        }
        batch.tokens.withUnsafeBufferPointer { tokens in
            embeddingBackward(dtable: g.embed, dout: acts.dResid, tokens: tokens.baseAddress!, n: N, c: C)
        }
        squares += sumOfSquares(g.embed, count: c.vocabularySize * C, context: ctx)
        squares += sumOfSquares(g.finalNorm, count: C, context: ctx)
        if !c.tieWordEmbeddings { squares += sumOfSquares(g.lmHead, count: c.vocabularySize * C, context: ctx) }
        return squares
    }
}
