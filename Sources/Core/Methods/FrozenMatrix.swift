// FrozenMatrix: a projection's base matrix W (out, in) in the storage its
// method uses — Float32, or NF4 dequantised tile by tile on the fly (QLoRA) —
// with the two products every method needs.

/// A base weight matrix, read-only during training except under full
/// fine-tuning (whose optimizer updates the Float32 storage in place).
public enum FrozenMatrix: Sendable {
    /// Row-major Float32 (out, in).
    case dense(FloatPointer, outDim: Int, inDim: Int)

    public var outDim: Int { switch self { case let .dense(_, o, _): o } }
    public var inDim: Int { switch self { case let .dense(_, _, i): i } }

    /// Writes W as Float32 (out, in) into `destination` (a no-op copy when the
    /// destination already holds the same dense weights).
    func materialize(into destination: FloatPointer) {
        switch self {
        case let .dense(w, o, i):
            if w.base != destination.base { destination.base.update(from: w.base, count: o * i) }
        }
    }

    /// Floats of tile scratch the products need (dequantised rows in flight).
    func tileFloats(threads: Int) -> Int {
        switch self { case .dense: 0 }
    }

    /// out (N, outDim) = inp (N, inDim) · Wᵀ.
    func multiply(out: FloatPointer, inp: FloatPointer, n: Int, tiles: FloatPointer, context: ComputeContext) {
        switch self {
        case let .dense(w, o, i):
            linearForward(out.base, inp.base, w.base, n: n, inDim: i, outDim: o)
        }
    }

    /// dinp (N, inDim) (+)= dout (N, outDim) · W.
    func multiplyTransposed(dinp: FloatPointer, dout: FloatPointer, n: Int, accumulate: Bool, tiles: FloatPointer, context: ComputeContext) {
        switch self {
        case let .dense(w, o, i):
            linearBackward(dinp: dinp.base, dweight: nil, dout: dout.base, inp: dout.base, weight: w.base,
                           n: n, inDim: i, outDim: o, accumulateInput: accumulate)
        }
    }
}
