// SwiGLU: the gate of Llama's MLP, h = silu(g) ⊙ u, and its backward.
import Foundation

@inline(__always) private func sigmoid(_ x: Float) -> Float { 1 / (1 + expf(-x)) }

/// - out, gate, up: (N·F) flat.
public func swigluForward(_ out: FloatPointer, gate: FloatPointer, up: FloatPointer, count: Int, context: ComputeContext) {
    context.parallelFor(count, minimumPerThread: 4096) { range in
        for i in range {
            let g = gate[i]
            out[i] = g * sigmoid(g) * up[i]
        }
    }
}

/// dgate, dup (N·F) are overwritten (they are per-layer scratch, not parameters).
public func swigluBackward(
    dgate: FloatPointer, dup: FloatPointer, dout: FloatPointer, gate: FloatPointer, up: FloatPointer,
    count: Int, context: ComputeContext
) {
    context.parallelFor(count, minimumPerThread: 4096) { range in
        for i in range {
            let g = gate[i], s = sigmoid(g), d = dout[i]
            dup[i] = d * g * s
            dgate[i] = d * up[i] * (s + g * s * (1 - s))
        }
    }
}
