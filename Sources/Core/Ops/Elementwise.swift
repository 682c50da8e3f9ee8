// Elementwise: column scaling (IA³), masks (dropout) and their backward.

/// out (R, C) = inp (R, C) ⊙ v (C) broadcast over rows; out may alias inp.
public func scaleColumnsForward(_ out: FloatPointer, _ inp: FloatPointer, _ v: FloatPointer, rows: Int, cols: Int, context: ComputeContext) {
    context.parallelFor(rows, minimumPerThread: 64) { range in
        for r in range {
            let o = out.base + r * cols, x = inp.base + r * cols
            for c in 0..<cols { o[c] = x[c] * v[c] }
        }
    }
}

/// out (R, C) += inp (R, C) ⊙ v (C).
public func scaleColumnsAccumulate(_ out: FloatPointer, _ inp: FloatPointer, _ v: FloatPointer, rows: Int, cols: Int, context: ComputeContext) {
    context.parallelFor(rows, minimumPerThread: 64) { range in
        for r in range {
            let o = out.base + r * cols, x = inp.base + r * cols
            for c in 0..<cols { o[c] += x[c] * v[c] }
        }
    }
}

/// Backward of `scaleColumnsForward` for the vector: dv (C) += Σ_rows dout ⊙ inp.
/// Serial over rows so that the sum is in a fixed order.
public func scaleColumnsBackward(dvector dv: FloatPointer, dout: FloatPointer, inp: FloatPointer, rows: Int, cols: Int) {
    for r in 0..<rows {
        let d = dout.base + r * cols, x = inp.base + r * cols
        for c in 0..<cols { dv[c] += d[c] * x[c] }
    }
}

/// out = a ⊙ b over `count` Floats; out may alias a.
public func multiplyElementwise(_ out: FloatPointer, _ a: FloatPointer, _ b: FloatPointer, count: Int) {
    for i in 0..<count { out[i] = a[i] * b[i] }
}

/// out += a ⊙ b over `count` Floats.
public func multiplyElementwiseAccumulate(_ out: FloatPointer, _ a: FloatPointer, _ b: FloatPointer, count: Int) {
    for i in 0..<count { out[i] += a[i] * b[i] }
}
