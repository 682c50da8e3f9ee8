// Projection: one linear map of a transformer layer (q, k, v, o, gate, up,
// down) as a method sees it — a frozen or trained base matrix, optionally a
// LoRA adapter beside it and an IA³ scale on its input or output — with the
// forward/backward pair that every method shares.
import Trial

/// A LoRA adapter: y += scale · dropout(x)·Aᵀ·Bᵀ, A (r, in), B (out, r).
/// Pointers index the method's adapter arenas (parameters and gradients).
public struct LoRAAdapter: Sendable {
    public let rank: Int
    public let scale: Float
    public let dropout: Float
    public let a: FloatPointer, b: FloatPointer
    public let gradA: FloatPointer, gradB: FloatPointer
}

/// An IA³ vector l: scales the projection's output (k, v) or input (down).
public struct IA3Scale: Sendable {
    public enum Position: Sendable { case input, output }
    public let position: Position
    public let vector: FloatPointer
    public let grad: FloatPointer
}

/// What a method adds to a projection: at most one adapter.
public enum Adapter: Sendable {
    case lora(LoRAAdapter)
    case ia3(IA3Scale)
}

/// One linear map (out = in · Wᵀ, W (out, in)) with what the method adds to it.
public struct Projection: Sendable {
    public let kind: ProjectionKind
    public let inDim: Int, outDim: Int
    public let weight: FrozenMatrix
    /// Set only when the base matrix itself is trained (full fine-tuning).
    public let weightGrad: FloatPointer?
    public let adapter: Adapter?

    public init(kind: ProjectionKind, inDim: Int, outDim: Int, weight: FrozenMatrix, weightGrad: FloatPointer?, adapter: Adapter?) {
        self.kind = kind; self.inDim = inDim; self.outDim = outDim
        self.weight = weight; self.weightGrad = weightGrad; self.adapter = adapter
    }
}

/// What one projection's adapter saves for backward (N = B·T rows).
struct ProjectionActivations {
    /// LoRA: dropout(x)·Aᵀ, (N, r).
    var loraHidden: FloatPointer?
    /// LoRA with dropout: the keep mask scaled by 1/(1−p), (N, in).
    var dropoutMask: FloatPointer?
    /// IA³ on the output: the unscaled output, (N, out).
    var unscaled: FloatPointer?

    init(for p: Projection, rows n: Int, arena: FloatArena) {
        switch p.adapter {
        case let .lora(lora)?:
            loraHidden = FloatPointer(arena.take(n * lora.rank))
            if lora.dropout > 0 { dropoutMask = FloatPointer(arena.take(n * p.inDim)) }
        case let .ia3(scale)? where scale.position == .output:
            unscaled = FloatPointer(arena.take(n * p.outDim))
        default:
            break
        }
    }
}

/// What the adapters of one layer save for backward, reached by projection
/// kind: `projectionForward`/`Backward` pick their projection's own.
struct AdapterActivations {
    private let q, k, v, o, gate, up, down: ProjectionActivations

    /// Takes each projection's slices from `arena`, in `NetworkLayer.projections` order.
    init(for layer: NetworkLayer, rows n: Int, arena: FloatArena) {
        q = ProjectionActivations(for: layer.q, rows: n, arena: arena)
        k = ProjectionActivations(for: layer.k, rows: n, arena: arena)
        v = ProjectionActivations(for: layer.v, rows: n, arena: arena)
        o = ProjectionActivations(for: layer.o, rows: n, arena: arena)
        gate = ProjectionActivations(for: layer.gate, rows: n, arena: arena)
        up = ProjectionActivations(for: layer.up, rows: n, arena: arena)
        down = ProjectionActivations(for: layer.down, rows: n, arena: arena)
    }

    subscript(kind: ProjectionKind) -> ProjectionActivations {
        switch kind {
        case .q: q
        case .k: k
        case .v: v
        case .o: o
        case .gate: gate
        case .up: up
        case .down: down
        }
    }
}

/// Scratch shared by all projections of a network (one call at a time):
/// `wide` (N, max in/out dim), `narrow` (N, max rank), `tiles` for frozen matrices.
struct ProjectionScratch {
    let wide: FloatPointer
    let narrow: FloatPointer
    let tiles: FloatPointer
}

/// out (N, outDim) = projection(inp (N, inDim)) for training: saves what
/// `projectionBackward` needs in `saved[p.kind]`; `rng` draws the LoRA dropout
/// mask (untouched when dropout is 0).
func projectionForward(
    _ p: Projection, out: FloatPointer, inp: FloatPointer, n: Int, saved: AdapterActivations,
    scratch: ProjectionScratch, rng: inout SeededGenerator, context ctx: ComputeContext
) {
    // A LoRA projection's base and adapter read the same input: one bf16 copy.
    sharingBFloat16Copy(of: inp, rows: n, columns: p.inDim) {
        projectionForwardProducts(p, out: out, inp: inp, n: n, saved: saved, scratch: scratch, rng: &rng, context: ctx)
    }
}

private func projectionForwardProducts(
    _ p: Projection, out: FloatPointer, inp: FloatPointer, n: Int, saved layerSaved: AdapterActivations,
    scratch: ProjectionScratch, rng: inout SeededGenerator, context ctx: ComputeContext
) {
    let saved = layerSaved[p.kind]
    switch p.adapter {
    case nil:
        p.weight.multiply(out: out, inp: inp, n: n, tiles: scratch.tiles, context: ctx)
    case let .lora(lora):
        guard let hidden = saved.loraHidden else { preconditionFailure("LoRA activations missing") }
        var dropped = inp
        if let mask = saved.dropoutMask {
            let keep = 1 / (1 - lora.dropout)
            for i in 0..<(n * p.inDim) { mask[i] = rng.nextUniform() < lora.dropout ? 0 : keep }
            multiplyElementwise(scratch.wide, inp, mask, count: n * p.inDim)
            dropped = scratch.wide
        }
        loraForward(p, lora, out: out, inp: inp, dropped: dropped, hidden: hidden, n: n, scratch: scratch, context: ctx)
    case let .ia3(scale):
        switch scale.position {
        case .input:
            ia3InputForward(p, scale, out: out, inp: inp, n: n, scratch: scratch, context: ctx)
        case .output:
            guard let unscaled = saved.unscaled else { preconditionFailure("IA³ activations missing") }
            p.weight.multiply(out: unscaled, inp: inp, n: n, tiles: scratch.tiles, context: ctx)
            scaleColumnsForward(out, unscaled, scale.vector, rows: n, cols: p.outDim, context: ctx)
        }
    }
}

/// out (N, outDim) = projection(inp (N, inDim)) for inference (evaluation,
/// generation, perplexity): no LoRA dropout and nothing saved, intermediate
/// results in `scratch`. The same products as `projectionForward` with
/// dropout 0, so the same Floats, from `decodingFewRowsLimit` + 1 rows on;
/// at fewer rows (decoding) a base without packed copies takes the few-rows
/// kernel up to that limit and LoRA's adapter runs on the calling thread,
/// rounding differently.
func projectionInference(
    _ p: Projection, out: FloatPointer, inp: FloatPointer, n: Int, scratch: ProjectionScratch, context ctx: ComputeContext
) {
    switch p.adapter {
    case nil:
        p.weight.multiply(out: out, inp: inp, n: n, tiles: scratch.tiles, context: ctx, fewRows: decodingFewRowsLimit)
    case let .lora(lora):
        // The base and the adapter read the same input: one bf16 copy, as in `projectionForward`.
        sharingBFloat16Copy(of: inp, rows: n, columns: p.inDim) {
            loraForward(p, lora, out: out, inp: inp, dropped: inp, hidden: scratch.narrow, n: n, scratch: scratch, context: ctx,
                        decoding: true)
        }
    case let .ia3(scale):
        switch scale.position {
        case .input:
            ia3InputForward(p, scale, out: out, inp: inp, n: n, scratch: scratch, context: ctx, decoding: true)
        case .output:
            p.weight.multiply(out: scratch.wide, inp: inp, n: n, tiles: scratch.tiles, context: ctx, fewRows: decodingFewRowsLimit)
            scaleColumnsForward(out, scratch.wide, scale.vector, rows: n, cols: p.outDim, context: ctx)
        }
    }
}

/// out = inp·Wᵀ + s·dropped·Aᵀ·Bᵀ, with hidden (N, r) = dropped·Aᵀ.
///
/// `decoding` (inference): a base without packed copies takes the few-rows
/// kernel up to `decodingFewRowsLimit` rows, and at those rows the two rank-r products
/// run on the calling thread (single-threaded BLAS): each is a few
/// microseconds of arithmetic, and waking the engine's second thread for it
/// cost more (a decoding pass makes two per projection, 420 at SmolLM2).
private func loraForward(
    _ p: Projection, _ lora: LoRAAdapter, out: FloatPointer, inp: FloatPointer, dropped: FloatPointer, hidden: FloatPointer,
    n: Int, scratch: ProjectionScratch, context ctx: ComputeContext, decoding: Bool = false
) {
    let fewRows = decoding ? decodingFewRowsLimit : fewRowsLimit
    p.weight.multiply(out: out, inp: inp, n: n, tiles: scratch.tiles, context: ctx, fewRows: fewRows)
    let adapter = {
        linearForward(hidden.base, dropped.base, lora.a.base, n: n, inDim: p.inDim, outDim: lora.rank)
        gemm(transA: false, transB: true, m: n, n: p.outDim, k: lora.rank, alpha: lora.scale,
             a: hidden.base, lda: lora.rank, b: lora.b.base, ldb: lora.rank, beta: 1, c: out.base, ldc: p.outDim)
    }
    if decoding && n <= fewRows { ctx.withSingleThreadedBLAS(adapter) } else { adapter() }
}

/// out = (x ⊙ l)·Wᵀ: the scaled input lives in scratch for the product only.
/// `decoding` as in `loraForward`.
private func ia3InputForward(
    _ p: Projection, _ scale: IA3Scale, out: FloatPointer, inp: FloatPointer, n: Int, scratch: ProjectionScratch, context ctx: ComputeContext,
    decoding: Bool = false
) {
    scaleColumnsForward(scratch.wide, inp, scale.vector, rows: n, cols: p.inDim, context: ctx)
    p.weight.multiply(out: out, inp: scratch.wide, n: n, tiles: scratch.tiles, context: ctx,
                      fewRows: decoding ? decodingFewRowsLimit : fewRowsLimit)
}

/// Backward of `projectionForward`. dinp (N, inDim) += ∂L/∂inp, or = when
/// `!accumulateInput`; skipped when nil. The gradients of whatever the
/// projection trains (its weight, LoRA's A and B, IA³'s vector) are written
/// (=), not added to. `dout` (N, outDim) is only read: for o_proj and
/// down_proj it is the residual stream's gradient.
func projectionBackward(
    _ p: Projection, dinp: FloatPointer?, accumulateInput: Bool, dout: FloatPointer, inp: FloatPointer, n: Int,
    saved: AdapterActivations, scratch: ProjectionScratch, context ctx: ComputeContext
) {
    // dout feeds up to three products (LoRA: dB, dh and the base's dx; full:
    // dx and dW) and inp up to two: one bf16 copy of each.
    sharingBFloat16Copy(of: dout, rows: n, columns: p.outDim) {
        sharingBFloat16Copy(of: inp, rows: n, columns: p.inDim) {
            projectionBackwardProducts(p, dinp: dinp, accumulateInput: accumulateInput, dout: dout, inp: inp, n: n,
                                       saved: saved, scratch: scratch, context: ctx)
        }
    }
}

private func projectionBackwardProducts(
    _ p: Projection, dinp: FloatPointer?, accumulateInput: Bool, dout: FloatPointer, inp: FloatPointer, n: Int,
    saved layerSaved: AdapterActivations, scratch: ProjectionScratch, context ctx: ComputeContext
) {
    let saved = layerSaved[p.kind]
    switch p.adapter {
    case nil:
        if let dinp { p.weight.multiplyTransposed(dinp: dinp, dout: dout, n: n, accumulate: accumulateInput, tiles: scratch.tiles, context: ctx) }
    case let .lora(lora):
        guard let hidden = saved.loraHidden else { preconditionFailure("LoRA activations missing") }
        // dB = s·doutᵀ·h;  dh = s·dout·B;  dA = dhᵀ·dropout(x);  dx += (dh·A) ⊙ mask
        gemm(transA: true, transB: false, m: p.outDim, n: lora.rank, k: n, alpha: lora.scale,
             a: dout.base, lda: p.outDim, b: hidden.base, ldb: lora.rank, beta: 0, c: lora.gradB.base, ldc: lora.rank)
        let dh = scratch.narrow
        gemm(transA: false, transB: false, m: n, n: lora.rank, k: p.outDim, alpha: lora.scale,
             a: dout.base, lda: p.outDim, b: lora.b.base, ldb: lora.rank, beta: 0, c: dh.base, ldc: lora.rank)
        var dropped = inp
        if let mask = saved.dropoutMask {
            multiplyElementwise(scratch.wide, inp, mask, count: n * p.inDim)
            dropped = scratch.wide
        }
        gemm(transA: true, transB: false, m: lora.rank, n: p.inDim, k: n,
             a: dh.base, lda: lora.rank, b: dropped.base, ldb: p.inDim, beta: 0, c: lora.gradA.base, ldc: p.inDim)
        if let dinp {
            p.weight.multiplyTransposed(dinp: dinp, dout: dout, n: n, accumulate: accumulateInput, tiles: scratch.tiles, context: ctx)
            if let mask = saved.dropoutMask {
                gemm(transA: false, transB: false, m: n, n: p.inDim, k: lora.rank,
                     a: dh.base, lda: lora.rank, b: lora.a.base, ldb: p.inDim, beta: 0, c: scratch.wide.base, ldc: p.inDim)
                multiplyElementwiseAccumulate(dinp, scratch.wide, mask, count: n * p.inDim)
            } else {
                gemm(transA: false, transB: false, m: n, n: p.inDim, k: lora.rank,
                     a: dh.base, lda: lora.rank, b: lora.a.base, ldb: p.inDim, beta: 1, c: dinp.base, ldc: p.inDim)
            }
        }
    case let .ia3(scale):
        switch scale.position {
        case .output:
            guard let unscaled = saved.unscaled else { preconditionFailure("IA³ activations missing") }
            // dl = Σ_rows dout ⊙ unscaled;  d(unscaled) = dout ⊙ l (in scratch: dout may be the residual gradient)
            if let dinp {
                scaleColumnsBackward(dvector: scale.grad, dout: dout, inp: unscaled, rows: n, cols: p.outDim,
                                     v: scale.vector, dscaled: scratch.wide, accumulate: false, context: ctx)
                p.weight.multiplyTransposed(dinp: dinp, dout: scratch.wide, n: n, accumulate: accumulateInput, tiles: scratch.tiles, context: ctx)
            } else {
                scaleColumnsBackward(dvector: scale.grad, dout: dout, inp: unscaled, rows: n, cols: p.outDim, context: ctx)
            }
        case .input:
            // d(x⊙l) = dout·W;  dl = Σ_rows d(x⊙l) ⊙ x;  dx (+)= d(x⊙l) ⊙ l
            p.weight.multiplyTransposed(dinp: scratch.wide, dout: dout, n: n, accumulate: false, tiles: scratch.tiles, context: ctx)
            if let dinp {
                scaleColumnsBackward(dvector: scale.grad, dout: scratch.wide, inp: inp, rows: n, cols: p.inDim,
                                     v: scale.vector, dscaled: dinp, accumulate: accumulateInput, context: ctx)
            } else {
                scaleColumnsBackward(dvector: scale.grad, dout: scratch.wide, inp: inp, rows: n, cols: p.inDim, context: ctx)
            }
        }
    }
    if let grad = p.weightGrad {
        // Only full fine-tuning trains the base matrix: dW = doutᵀ·inp. Written,
        // not added: at batch 1 reading a zeroed dW back, and the optimizer
        // zeroing it, streamed two more copies of the weights per step.
        gemm(transA: true, transB: false, m: p.outDim, n: p.inDim, k: n,
             a: dout.base, lda: p.outDim, b: inp.base, ldb: p.inDim, beta: 0, c: grad.base, ldc: p.inDim)
    }
}
