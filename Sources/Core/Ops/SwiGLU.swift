// SwiGLU: the gate of Llama's MLP, h = silu(g) ⊙ u, and its backward; the
// element-wise loops are CKernels' (`swiglu.c`), where the sigmoid's
// exponential is vectorised.
import CKernels

/// - out, gate, up: (N·F) flat.
public func swigluForward(_ out: FloatPointer, gate: FloatPointer, up: FloatPointer, count: Int, context: ComputeContext) {
    context.parallelFor(count, minimumPerThread: 4096) { range in
        factsweep_swiglu_forward(out.base + range.lowerBound, gate.base + range.lowerBound, up.base + range.lowerBound,
                                 range.count)
    }
}

/// dgate, dup (N·F) are overwritten (they are per-layer scratch, not parameters).
public func swigluBackward(
    dgate: FloatPointer, dup: FloatPointer, dout: FloatPointer, gate: FloatPointer, up: FloatPointer,
    count: Int, context: ComputeContext
) {
    context.parallelFor(count, minimumPerThread: 4096) { range in
        let o = range.lowerBound
        factsweep_swiglu_backward(dgate.base + o, dup.base + o, dout.base + o, gate.base + o, up.base + o, range.count)
    }
}
