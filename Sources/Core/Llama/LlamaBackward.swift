// The backward pass of a Llama network: `forwardHidden` in exact reverse order,
// writing the gradients of whatever the network trains.

extension LlamaNetwork {
    /// Backpropagates the loss of the last `forward(batch, acts)`. Every
    /// trained tensor's gradient is overwritten (=), whatever it held: each
    /// weight's comes from one product per pass, written with beta 0, so
    /// nothing zeroes the gradients between steps (at batch 1 of full
    /// fine-tuning, zeroing them and reading the zeros back streamed two
    /// more copies of the weights a step). The embedding's gradient is a
    /// scatter over the batch's tokens: a tied head's product writes all of
    /// it first; untied, it is zeroed here. A network whose layers share one
    /// gradient span (full fine-tuning with the update in the backward pass,
    /// `LayerSharedGradients`) needs `gradientsDone` to consume each layer's
    /// before the next layer down writes. With
    /// `sumsSquares`, returns Σ g² over all trained tensors, summed layer by
    /// layer while each layer's gradients are still in cache (for clipping
    /// without another pass); without, nil and no pass.
    ///
    /// `gradientsDone`, when given, is called with each range of
    /// `layerGradients` as soon as its layer's gradients are complete (after
    /// their squares are summed), then with each of `finalGradients`: the
    /// optimizer's update in the backward pass. Nothing later in the pass
    /// reads a layer's weights or gradients once its range is handed over.
    @discardableResult
    public func backward(_ batch: TokenBatch, _ acts: LlamaActivations, context ctx: ComputeContext, sumsSquares: Bool = true,
                         gradientsDone: ((GradientRange) -> Void)? = nil) -> Double? {
        let N = batch.rowCount
        let c = config, C = c.hiddenSize, Q = c.queryWidth, K = c.kvWidth, F = c.intermediateSize
        let m = batch.labelledCount
        let shape = AttentionShape(lengths: batch.lengths, prefix: batch.sharedPrefix, heads: c.headCount, kvHeads: c.kvHeadCount, headDim: c.headDimension)
        let scratch = acts.grads.projectionScratch
        precondition(shape.prefixScratchCount <= acts.attentionPrefixScratchCount, "shared prefix exceeds the activations' scratch")
        acts.requireThreads(of: ctx)

        // Output head and final norm, at the labelled rows; then scatter into the stream.
        if let headGrad {
            // Both products read the logits' gradient: one bf16 copy. (Without a trained head one product reads it,
            // or none when the forward took the head in one pass and wrote dFinalOut itself.)
            // With no labelled row (m = 0) the head's product sums nothing and writes zeros (beta 0).
            sharingBFloat16Copy(of: acts.head.logits, rows: m, columns: c.vocabularySize) {
                head.multiplyTransposed(dinp: acts.grads.dFinalOut, dout: acts.head.logits, n: m, accumulate: false, context: ctx)
                gemm(transA: true, transB: false, m: c.vocabularySize, n: C, k: m, a: acts.head.logits.base, lda: c.vocabularySize,
                     b: acts.head.finalOut.base, ldb: C, beta: 0, c: headGrad.base, ldc: C)
            }
        } else if !acts.fusedHead {
            head.multiplyTransposed(dinp: acts.grads.dFinalOut, dout: acts.head.logits, n: m, accumulate: false, context: ctx)
        }
        acts.grads.dFinalIn.base.update(repeating: 0, count: m * C)
        rmsNormBackward(dinp: acts.grads.dFinalIn, dweight: finalNormGrad, dout: acts.grads.dFinalOut, inp: acts.head.finalIn, weight: finalNorm,
                        rstd: acts.head.finalRstd, n: m, c: C, scratch: acts.grads.normScratch, context: ctx)
        // A compacted last layer (LastLayerRows.swift) starts from its m rows, in the head's order: as forward ran it.
        let compact = acts.compactedLastLayer
        if compact {
            acts.grads.dResid.base.update(from: acts.grads.dFinalIn.base, count: m * C)
        } else {
            acts.grads.dResid.base.update(repeating: 0, count: N * C)
            for r in 0..<m {
                let dst = acts.grads.dResid.base + Int(acts.rowIndex[r]) * C, src = acts.grads.dFinalIn.base + r * C
                for i in 0..<C { dst[i] += src[i] }
            }
        }

        var squares: Double = 0
        for l in stride(from: c.layerCount - 1, through: 0, by: -1) {
            let a = acts.layers[l], w = layers[l]
            // Rows after attention: N, or the head's m in a compacted last layer.
            let n = compact && l + 1 == c.layerCount ? m : N
            // MLP block; dResid holds ∂L/∂out and becomes ∂L/∂residMid.
            projectionBackward(w.down, dinp: acts.grads.dAct, accumulateInput: false, dout: acts.grads.dResid, inp: a.act, n: n,
                               saved: a.adapters, scratch: scratch, context: ctx)
            swigluBackward(dgate: acts.grads.dGate, dup: acts.grads.dUp, dout: acts.grads.dAct, gate: a.gate, up: a.up, count: n * F, context: ctx)
            sharingBFloat16Copy(of: a.mlpNormOut, rows: n, columns: C) {
                projectionBackward(w.gate, dinp: acts.grads.dNormOut, accumulateInput: false, dout: acts.grads.dGate, inp: a.mlpNormOut, n: n,
                                   saved: a.adapters, scratch: scratch, context: ctx)
                projectionBackward(w.up, dinp: acts.grads.dNormOut, accumulateInput: true, dout: acts.grads.dUp, inp: a.mlpNormOut, n: n,
                                   saved: a.adapters, scratch: scratch, context: ctx)
            }
            rmsNormBackward(dinp: acts.grads.dResid, dweight: w.mlpNormGrad, dout: acts.grads.dNormOut, inp: a.residMid, weight: w.mlpNorm,
                            rstd: a.mlpRstd, n: n, c: C, scratch: acts.grads.normScratch, context: ctx)
            // Attention block; dResid becomes ∂L/∂residIn.
            projectionBackward(w.o, dinp: acts.grads.dAttnOut, accumulateInput: false, dout: acts.grads.dResid, inp: a.attnOut, n: n,
                               saved: a.adapters, scratch: scratch, context: ctx)
            if n < N {
                // Back to every row, zero where the head read nothing, for attention's backward and the residual.
                scatterRows(acts.grads.dAttnOut, width: Q, acts.rowIndex, count: n, rows: N)
                scatterRows(acts.grads.dResid, width: C, acts.rowIndex, count: n, rows: N)
            }
            attentionBackward(dq: acts.grads.dq, dk: acts.grads.dk, dv: acts.grads.dv, dout: acts.grads.dAttnOut, probs: a.probs, q: a.q, k: a.k, v: a.v,
                              shape: shape, scratch: acts.grads.attentionScratch,
                              prefixScratch: acts.grads.attentionPrefixScratch, context: ctx)
            batch.positions.withUnsafeBufferPointer { positions in
                guard let pos = positions.baseAddress else { return }
                ropeBackward(acts.grads.dq, table: acts.rope, positions: pos, rows: N, heads: c.headCount, rowStride: Q, context: ctx)
                ropeBackward(acts.grads.dk, table: acts.rope, positions: pos, rows: N, heads: c.kvHeadCount, rowStride: K, context: ctx)
            }
            // Below the first layer's attention only the embeddings could take
            // a gradient: when nothing there trains, ∂L/∂residIn is not formed
            // (the adapter methods skip the q, k and v input products of layer 0).
            let inputGradient = l > 0 || embedGrad != nil || w.attnNormGrad != nil
            let dNormOut = inputGradient ? acts.grads.dNormOut : nil
            sharingBFloat16Copy(of: a.attnNormOut, rows: N, columns: C) {
                projectionBackward(w.q, dinp: dNormOut, accumulateInput: false, dout: acts.grads.dq, inp: a.attnNormOut, n: N,
                                   saved: a.adapters, scratch: scratch, context: ctx)
                projectionBackward(w.k, dinp: dNormOut, accumulateInput: true, dout: acts.grads.dk, inp: a.attnNormOut, n: N,
                                   saved: a.adapters, scratch: scratch, context: ctx)
                projectionBackward(w.v, dinp: dNormOut, accumulateInput: true, dout: acts.grads.dv, inp: a.attnNormOut, n: N,
                                   saved: a.adapters, scratch: scratch, context: ctx)
            }
            if inputGradient {
                rmsNormBackward(dinp: acts.grads.dResid, dweight: w.attnNormGrad, dout: acts.grads.dNormOut, inp: a.residIn, weight: w.attnNorm,
                                rstd: a.attnRstd, n: N, c: C, scratch: acts.grads.normScratch, context: ctx)
            }
            if l < layerGradients.count {
                if sumsSquares { squares += sumOfSquares(layerGradients[l].start, count: layerGradients[l].count, context: ctx) }
                gradientsDone?(layerGradients[l])
            }
        }
        if let embedGrad {
            // A tied head's product wrote the whole table above; an embedding of its own starts from zero.
            if !c.tieWordEmbeddings { embedGrad.base.update(repeating: 0, count: c.vocabularySize * C) }
            batch.tokens.withUnsafeBufferPointer { tokens in
                guard let ids = tokens.baseAddress else { return }
                embeddingBackward(dtable: embedGrad, dout: acts.grads.dResid, tokens: ids, n: N, c: C)
            }
        }
        for range in finalGradients {
            if sumsSquares { squares += sumOfSquares(range.start, count: range.count, context: ctx) }
            gradientsDone?(range)
        }
        return sumsSquares ? squares : nil
    }
}
