// RMSNorm (Llama): y = w ⊙ x / sqrt(mean(x²) + eps), per row, and its backward;
// each row in CKernels (rms_norm.c), the rows split across threads here.
import CKernels

/// - out: (N, C); rstd: (N) saved for backward; inp: (N, C); weight: (C).
public func rmsNormForward(
    _ out: FloatPointer, rstd: FloatPointer, _ inp: FloatPointer, weight: FloatPointer,
    n: Int, c: Int, eps: Float, context: ComputeContext
) {
    context.parallelFor(n, minimumPerThread: 8) { rows in
        for row in rows {
            rstd[row] = factsweep_rms_norm_row(out.base + row * c, inp.base + row * c, weight.base, c, eps)
        }
    }
}

/// Backward of `rmsNormForward`: dinp (N, C) += ∂L/∂x; dweight (C) = ∂L/∂w
/// (nil when frozen), overwritten as every trained gradient is (the optimizer
/// does not zero them). With x̂ = x·r: ∂L/∂x = r·(w⊙dy) − x̂·mean(w⊙dy⊙x̂).
/// dweight is reduced per thread into `scratch` (threads × C), then summed in
/// thread order, so results do not depend on scheduling.
public func rmsNormBackward(
    dinp: FloatPointer, dweight: FloatPointer?, dout: FloatPointer, inp: FloatPointer,
    weight: FloatPointer, rstd: FloatPointer, n: Int, c: Int, scratch: FloatPointer,
    context: ComputeContext
) {
    let chunks = min(context.threads, n)
    context.parallelChunks(n) { chunk, rows in
        let dw = scratch.base + chunk * c
        if dweight != nil { dw.update(repeating: 0, count: c) }
        for row in rows {
            factsweep_rms_norm_backward_row(dinp.base + row * c, dweight != nil ? dw : nil, dout.base + row * c, inp.base + row * c,
                                            weight.base, rstd[row], c)
        }
    }
    if let dweight {
        dweight.base.update(from: scratch.base, count: c)
        for chunk in 1..<max(1, chunks) {
            let dw = scratch.base + chunk * c
            for i in 0..<c { dweight[i] += dw[i] }
        }
    }
}
