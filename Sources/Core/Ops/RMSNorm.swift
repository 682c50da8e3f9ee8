// RMSNorm (Llama): y = w ⊙ x / sqrt(mean(x²) + eps), per row, and its backward.

/// - out: (N, C); rstd: (N) saved for backward; inp: (N, C); weight: (C).
public func rmsNormForward(
    _ out: FloatPointer, rstd: FloatPointer, _ inp: FloatPointer, weight: FloatPointer,
    n: Int, c: Int, eps: Float, context: ComputeContext
) {
    context.parallelFor(n, minimumPerThread: 8) { rows in
        for row in rows {
            let x = inp.base + row * c, y = out.base + row * c
            var sum: Float = 0
            for i in 0..<c { sum += x[i] * x[i] }
            let r = 1 / (sum / Float(c) + eps).squareRoot()
            rstd[row] = r
            for i in 0..<c { y[i] = weight[i] * (x[i] * r) }
        }
    }
}

/// Backward of `rmsNormForward`: dinp (N, C) += ∂L/∂x; dweight (C) += ∂L/∂w
/// (nil when frozen). With x̂ = x·r: ∂L/∂x = r·(w⊙dy) − x̂·mean(w⊙dy⊙x̂).
/// dweight is reduced per thread into `scratch` (threads × C) before adding, so
/// results do not depend on scheduling.
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
            let x = inp.base + row * c, dy = dout.base + row * c, dx = dinp.base + row * c
            let r = rstd[row]
            var dot: Float = 0
            for i in 0..<c { dot += weight[i] * dy[i] * x[i] }
            let k = dot * r * r * r / Float(c)
            for i in 0..<c { dx[i] += r * weight[i] * dy[i] - k * x[i] }
            if dweight != nil {
                for i in 0..<c { dw[i] += dy[i] * x[i] * r }
            }
        }
    }
    if let dweight {
        for chunk in 0..<chunks {
            let dw = scratch.base + chunk * c
            for i in 0..<c { dweight[i] += dw[i] }
        }
    }
}
