// Rotary position embeddings in Hugging Face's "rotate_half" layout (the two
// halves of each head are rotated against each other), plain or with Llama 3
// frequency scaling, and the backward (the inverse rotation).
import Foundation

/// cos/sin of position × frequency, (maxPositions, headDim/2) each.
public final class RopeTable: Sendable {
    public let headDimension: Int
    /// Positions covered; sized to the longest sequence a model is set up for,
    /// not to the configuration's (possibly 131,072) maximum.
    public let positions: Int
    private let storage: FloatArena
    let cos: FloatPointer
    let sin: FloatPointer

    public init(headDimension: Int, positions: Int, theta: Float, scaling: RopeScaling) {
        self.headDimension = headDimension
        self.positions = positions
        let half = headDimension / 2
        let frequencies = RopeTable.inverseFrequencies(headDimension: headDimension, theta: theta, scaling: scaling)
        let (storage, (cos, sin)) = FloatArena.carved { arena in
            (FloatPointer(arena.take(positions * half)), FloatPointer(arena.take(positions * half)))
        }
        self.storage = storage
        for p in 0..<positions {
            for i in 0..<half {
                // Float product first, as transformers computes it in float32.
                let angle = Double(Float(p) * frequencies[i])
                cos[p * half + i] = Float(Foundation.cos(angle))
                sin[p * half + i] = Float(Foundation.sin(angle))
            }
        }
        self.cos = cos
        self.sin = sin
    }

    /// theta^(−2i/d), rescaled for Llama 3 as transformers' `_compute_llama3_parameters`.
    public static func inverseFrequencies(headDimension: Int, theta: Float, scaling: RopeScaling) -> [Float] {
        let half = headDimension / 2
        var frequencies = (0..<half).map { i in
            Float(1.0 / pow(Double(theta), Double(Float(2 * i) / Float(headDimension))))
        }
        if case let .llama3(factor, low, high, original) = scaling {
            let lowWavelength = Float(original) / low
            let highWavelength = Float(original) / high
            frequencies = frequencies.map { f in
                let wavelength = 2 * Float.pi / f
                if wavelength < highWavelength { return f }
                if wavelength > lowWavelength { return f / factor }
                let smooth = (Float(original) / wavelength - low) / (high - low)
                return (1 - smooth) * f / factor + smooth * f
            }
        }
        return frequencies
    }
}

/// Rotates each head of x in place. x: (B·T, heads·headDim) with row stride
/// `rowStride`; the position of row r is r mod T.
public func ropeForward(_ x: FloatPointer, table: RopeTable, rows: Int, seqLen: Int, heads: Int, rowStride: Int, context: ComputeContext) {
    ropeApply(x, table: table, rows: rows, seqLen: seqLen, heads: heads, rowStride: rowStride, direction: 1, context: context)
}

/// Backward of `ropeForward`, in place on the gradient: the rotation is
/// orthogonal, so the gradient turns back by the same angle.
public func ropeBackward(_ dx: FloatPointer, table: RopeTable, rows: Int, seqLen: Int, heads: Int, rowStride: Int, context: ComputeContext) {
    ropeApply(dx, table: table, rows: rows, seqLen: seqLen, heads: heads, rowStride: rowStride, direction: -1, context: context)
}

/// Rotates row r of x in place at position `positions[r]`: sequences laid end
/// to end (training without padding), or decoding, where each sequence of a
/// batch is at its own position.
public func ropeForward(_ x: FloatPointer, table: RopeTable, positions: UnsafePointer<Int32>, rows: Int, heads: Int, rowStride: Int, context: ComputeContext) {
    ropeApply(x, table: table, rows: rows, seqLen: table.positions, heads: heads, rowStride: rowStride, direction: 1,
              positions: positions, context: context)
}

/// Backward of the `positions` form of `ropeForward`.
public func ropeBackward(_ dx: FloatPointer, table: RopeTable, positions: UnsafePointer<Int32>, rows: Int, heads: Int, rowStride: Int,
                         context: ComputeContext) {
    ropeApply(dx, table: table, rows: rows, seqLen: table.positions, heads: heads, rowStride: rowStride, direction: -1,
              positions: positions, context: context)
}

private func ropeApply(
    _ x: FloatPointer, table: RopeTable, rows: Int, seqLen: Int, heads: Int, rowStride: Int,
    direction: Float, positions: UnsafePointer<Int32>? = nil, context: ComputeContext
) {
    let d = table.headDimension, half = d / 2
    precondition(seqLen <= table.positions, "sequence of \(seqLen) exceeds the rope table's \(table.positions) positions")
    let explicit = positions.map { UncheckedSendable($0) }
    context.parallelFor(rows, minimumPerThread: 16) { range in
        for r in range {
            let pos = explicit.map { Int($0.value[r]) } ?? r % seqLen
            precondition(pos < table.positions, "position \(pos) exceeds the rope table's \(table.positions) positions")
            let c = table.cos.base + pos * half, s = table.sin.base + pos * half
            for h in 0..<heads {
                let v = x.base + r * rowStride + h * d
                for i in 0..<half {
                    let x1 = v[i], x2 = v[i + half], sn = direction * s[i]
                    v[i] = x1 * c[i] - x2 * sn
                    v[i + half] = x2 * c[i] + x1 * sn
                }
            }
        }
    }
}
