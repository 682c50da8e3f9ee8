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

/// Backward of `scaleColumnsForward` for the vector: dv (C) = Σ_rows dout ⊙ inp,
/// overwritten as every trained gradient is (the optimizer does not zero
/// them). Each column sums over the rows in their order, whatever the
/// threads: they split the columns, not the rows.
public func scaleColumnsBackward(dvector dv: FloatPointer, dout: FloatPointer, inp: FloatPointer, rows: Int, cols: Int,
                                 context: ComputeContext) {
    scaleColumnsBackward(dvector: dv, dout: dout, inp: inp, rows: rows, cols: cols, context: context) { _, _, _ in }
}

/// `scaleColumnsBackward`, and in the same pass over `dout` either side of
/// the scale's other gradient: dscaled (R, C) (+)= dout ⊙ v, where v scales
/// the columns of the product the gradient flows on to (IA³ on an output:
/// the product's unscaled output; on an input: the layer's input). One pass
/// over each (R, C) operand instead of two or three; the same Floats as
/// `scaleColumnsBackward` then `dscaled` (+)= dout ⊙ v row by row.
public func scaleColumnsBackward(dvector dv: FloatPointer, dout: FloatPointer, inp: FloatPointer, rows: Int, cols: Int,
                                 v: FloatPointer, dscaled: FloatPointer, accumulate: Bool, context: ComputeContext) {
    scaleColumnsBackward(dvector: dv, dout: dout, inp: inp, rows: rows, cols: cols, context: context) { r, lo, hi in
        let d = dout.base + r * cols, o = dscaled.base + r * cols
        if accumulate {
            for c in lo..<hi { o[c] += d[c] * v[c] }
        } else {
            for c in lo..<hi { o[c] = d[c] * v[c] }
        }
    }
}

/// The threads take a share of the columns each (a multiple of 16, so that
/// their rows' slices are whole vectors) and run `alsoRow(row, lo, hi)` on
/// their slice of each row after summing it.
@inline(__always)
private func scaleColumnsBackward(dvector dv: FloatPointer, dout: FloatPointer, inp: FloatPointer, rows: Int, cols: Int,
                                  context: ComputeContext, alsoRow: (Int, Int, Int) -> Void) {
    let blocks = (cols + 15) / 16
    // A thread takes at least 1024 rows' worth of blocks (16k Floats): below that a second one costs more than it saves.
    context.parallelFor(blocks, minimumPerThread: max(1, 1024 / max(1, rows))) { range in
        let lo = range.lowerBound * 16, hi = min(cols, range.upperBound * 16)
        (dv.base + lo).update(repeating: 0, count: hi - lo)
        for r in 0..<rows {
            let d = dout.base + r * cols, x = inp.base + r * cols
            for c in lo..<hi { dv[c] += d[c] * x[c] }
            alsoRow(r, lo, hi)
        }
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
