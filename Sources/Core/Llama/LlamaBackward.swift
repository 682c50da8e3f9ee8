// The backward pass of a Llama network: `forwardHidden` in exact reverse order,
// accumulating into the gradients of whatever the network trains.

extension LlamaNetwork {
    /// Backpropagates the loss of the last `forward(batch, acts)`. Gradients
    /// accumulate (+=): the caller zeroes them once per step. Returns Σ g² over
    /// all trained tensors, summed layer by layer while each layer's gradients
    /// are still in cache (for clipping without another pass).
    @discardableResult
    public func backward(_ batch: TokenBatch, _ acts: LlamaActivations, context ctx: ComputeContext) -> Double {
        let B = batch.batchSize, T = batch.seqLen, N = B * T
        let c = config, C = c.hiddenSize, Q = c.queryWidth, K = c.kvWidth, F = c.intermediateSize
        let m = batch.labelledCount
        let shape = AttentionShape(batch: B, seqLen: T, heads: c.headCount, kvHeads: c.kvHeadCount, headDim: c.headDimension)
        let scratch = acts.projectionScratch

        // Output head and final norm, at the labelled rows; then scatter into the stream.
        linearBackward(dinp: acts.dFinalOut.base, dweight: headGrad?.base, dout: acts.logits.base, inp: acts.finalOut.base,
                       weight: lmHead.base, n: m, inDim: C, outDim: c.vocabularySize, accumulateInput: false)
        acts.dFinalIn.base.update(repeating: 0, count: m * C)
        rmsNormBackward(dinp: acts.dFinalIn, dweight: finalNormGrad, dout: acts.dFinalOut, inp: acts.finalIn, weight: finalNorm,
                        rstd: acts.finalRstd, n: m, c: C, scratch: acts.normScratch, context: ctx)
        acts.dResid.base.update(repeating: 0, count: N * C)
        for r in 0..<m {
            let dst = acts.dResid.base + Int(acts.rowIndex[r]) * C, src = acts.dFinalIn.base + r * C
            for i in 0..<C { dst[i] += src[i] }
        }

        var squares: Double = 0
        for l in stride(from: c.layerCount - 1, through: 0, by: -1) {
            let a = acts.layers[l], w = layers[l], saved = a.adapters
            // MLP block; dResid holds ∂L/∂out and becomes ∂L/∂residMid.
            projectionBackward(w.down, dinp: acts.dAct, accumulateInput: false, dout: acts.dResid, inp: a.act, n: N,
                               saved: saved[6], scratch: scratch, context: ctx)
            swigluBackward(dgate: acts.dGate, dup: acts.dUp, dout: acts.dAct, gate: a.gate, up: a.up, count: N * F, context: ctx)
            projectionBackward(w.gate, dinp: acts.dNormOut, accumulateInput: false, dout: acts.dGate, inp: a.mlpNormOut, n: N,
                               saved: saved[4], scratch: scratch, context: ctx)
            projectionBackward(w.up, dinp: acts.dNormOut, accumulateInput: true, dout: acts.dUp, inp: a.mlpNormOut, n: N,
                               saved: saved[5], scratch: scratch, context: ctx)
            rmsNormBackward(dinp: acts.dResid, dweight: w.mlpNormGrad, dout: acts.dNormOut, inp: a.residMid, weight: w.mlpNorm,
                            rstd: a.mlpRstd, n: N, c: C, scratch: acts.normScratch, context: ctx)
            // Attention block; dResid becomes ∂L/∂residIn.
            projectionBackward(w.o, dinp: acts.dAttnOut, accumulateInput: false, dout: acts.dResid, inp: a.attnOut, n: N,
                               saved: saved[3], scratch: scratch, context: ctx)
            attentionBackward(dq: acts.dq, dk: acts.dk, dv: acts.dv, dout: acts.dAttnOut, probs: a.probs, q: a.q, k: a.k, v: a.v,
                              shape: shape, scratch: acts.attentionScratch, context: ctx)
            ropeBackward(acts.dq, table: acts.rope, rows: N, seqLen: T, heads: c.headCount, rowStride: Q, context: ctx)
            ropeBackward(acts.dk, table: acts.rope, rows: N, seqLen: T, heads: c.kvHeadCount, rowStride: K, context: ctx)
            projectionBackward(w.q, dinp: acts.dNormOut, accumulateInput: false, dout: acts.dq, inp: a.attnNormOut, n: N,
                               saved: saved[0], scratch: scratch, context: ctx)
            projectionBackward(w.k, dinp: acts.dNormOut, accumulateInput: true, dout: acts.dk, inp: a.attnNormOut, n: N,
                               saved: saved[1], scratch: scratch, context: ctx)
            projectionBackward(w.v, dinp: acts.dNormOut, accumulateInput: true, dout: acts.dv, inp: a.attnNormOut, n: N,
                               saved: saved[2], scratch: scratch, context: ctx)
            rmsNormBackward(dinp: acts.dResid, dweight: w.attnNormGrad, dout: acts.dNormOut, inp: a.residIn, weight: w.attnNorm,
                            rstd: a.attnRstd, n: N, c: C, scratch: acts.normScratch, context: ctx)
            if l < layerGradients.count {
                squares += sumOfSquares(layerGradients[l].start, count: layerGradients[l].count, context: ctx)
            }
        }
        if let embedGrad {
            batch.tokens.withUnsafeBufferPointer { tokens in
                guard let ids = tokens.baseAddress else { return }
                embeddingBackward(dtable: embedGrad, dout: acts.dResid, tokens: ids, n: N, c: C)
            }
        }
        for range in finalGradients { squares += sumOfSquares(range.start, count: range.count, context: ctx) }
        return squares
    }
}
