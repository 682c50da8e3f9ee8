// FrozenMatrix: a projection's base matrix W (out, in) in the storage its
// method uses — Float32, bf16 (adapter methods in bf16 precision), or NF4
// dequantised tile by tile on the fly (QLoRA) — with the two products every
// method needs.

/// A base weight matrix, read-only during training except under full
/// fine-tuning (whose optimizer updates the Float32 storage in place).
public enum FrozenMatrix: Sendable {
    /// Row-major Float32 (out, in); `packed` holds its oneDNN-packed copies
    /// when it has any (a trained weight in bf16 precision, see `PackedWeight`).
    case dense(FloatPointer, outDim: Int, inDim: Int, packed: PackedWeight? = nil)
    /// NF4 (QLoRA), dequantised `tileRows` rows at a time into scratch.
    case nf4(NF4Tensor)
    /// Row-major bf16 (out, in): the frozen base of an adapter method in bf16
    /// precision, converted once; its products take it as it is.
    case bf16(BFloat16Matrix)

    public var outDim: Int { switch self { case let .dense(_, o, _, _): o; case let .nf4(t): t.rows; case let .bf16(m): m.rows } }
    public var inDim: Int { switch self { case let .dense(_, _, i, _): i; case let .nf4(t): t.columns; case let .bf16(m): m.columns } }

    /// Rows per dequantised tile: about 1 MB of Floats, so a tile stays in L2
    /// between its dequantisation and its product.
    static func tileRows(columns: Int) -> Int { max(16, (1 << 18) / columns) }

    /// Bytes the base matrix occupies.
    public var byteCount: Int {
        switch self {
        case let .dense(_, o, i, _): 4 * o * i
        case let .nf4(t): t.byteCount
        case let .bf16(m): m.byteCount
        }
    }

    /// Writes W as Float32 (out, in) into `destination` (a no-op copy when the
    /// destination already holds the same dense weights).
    func materialize(into destination: FloatPointer) {
        switch self {
        case let .dense(w, o, i, _):
            if w.base != destination.base { destination.base.update(from: w.base, count: o * i) }
        case let .nf4(t):
            t.dequantizeRows(0..<t.rows, into: destination.base)
        case let .bf16(m):
            m.widen(into: destination.base)
        }
    }

    /// Floats of tile scratch the products need (dequantised rows in flight):
    /// one tile per thread, since products with few rows give each thread its own.
    func tileFloats(threads: Int) -> Int {
        switch self {
        case .dense, .bf16: 0
        case let .nf4(t): FrozenMatrix.tileRows(columns: t.columns) * t.columns * max(1, threads)
        }
    }

    /// out (N, outDim) = inp (N, inDim) · Wᵀ.
    /// `tiles` (`tileFloats` of them) is needed by NF4 matrices only.
    func multiply(out: FloatPointer, inp: FloatPointer, n: Int, tiles: FloatPointer? = nil, context: ComputeContext) {
        switch self {
        case let .dense(w, o, i, packed):
            linearForward(out.base, inp.base, w.base, n: n, inDim: i, outDim: o, context: context, packed: packed)
        case let .bf16(w):
            gemmBFloat16(transA: false, transB: true, m: n, n: w.rows, k: w.columns, a: .f32(inp.base), lda: w.columns,
                         b: .bf16(w.base), ldb: w.columns, beta: 0, c: out.base, ldc: w.rows, packed: w.packedIfEnabled)
        case let .nf4(t) where n <= fewRowsLimit:
            guard let tiles else { preconditionFailure("NF4 products need tile scratch") }
            // Each thread dequantises and multiplies its own tiles (decoding).
            let rows = FrozenMatrix.tileRows(columns: t.columns), tileCount = (t.rows + rows - 1) / rows
            context.withSingleThreadedBLAS {
                context.parallelChunks(tileCount) { chunk, range in
                    let tile = tiles.base + chunk * rows * t.columns
                    for index in range {
                        let r0 = index * rows, r1 = min(t.rows, r0 + rows)
                        t.dequantizeRows(r0..<r1, into: tile)
                        gemm(transA: false, transB: true, m: n, n: r1 - r0, k: t.columns, a: inp.base, lda: t.columns,
                             b: tile, ldb: t.columns, beta: 0, c: out.base + r0, ldc: t.rows)
                    }
                }
            }
        case let .nf4(t):
            guard let tiles else { preconditionFailure("NF4 products need tile scratch") }
            // out[:, r0..<r1] = inp · tileᵀ, tile by tile of output rows.
            let rows = FrozenMatrix.tileRows(columns: t.columns)
            for r0 in stride(from: 0, to: t.rows, by: rows) {
                let r1 = min(t.rows, r0 + rows)
                t.dequantizeRows(r0..<r1, into: tiles.base, context: context)
                gemm(transA: false, transB: true, m: n, n: r1 - r0, k: t.columns, a: inp.base, lda: t.columns,
                     b: tiles.base, ldb: t.columns, beta: 0, c: out.base + r0, ldc: t.rows)
            }
        }
    }

    /// dinp (N, inDim) (+)= dout (N, outDim) · W.
    func multiplyTransposed(dinp: FloatPointer, dout: FloatPointer, n: Int, accumulate: Bool, tiles: FloatPointer? = nil, context: ComputeContext) {
        switch self {
        case let .dense(w, o, i, packed):
            linearBackward(dinp: dinp.base, dweight: nil, dout: dout.base, inp: dout.base, weight: w.base,
                           n: n, inDim: i, outDim: o, accumulateInput: accumulate, packed: packed)
        case let .bf16(w):
            gemmBFloat16(transA: false, transB: false, m: n, n: w.columns, k: w.rows, a: .f32(dout.base), lda: w.rows,
                         b: .bf16(w.base), ldb: w.columns, beta: accumulate ? 1 : 0, c: dinp.base, ldc: w.columns,
                         packed: w.packedIfEnabled)
        case let .nf4(t):
            guard let tiles else { preconditionFailure("NF4 products need tile scratch") }
            // dinp += dout[:, r0..<r1] · tile, over tiles of W's rows.
            let rows = FrozenMatrix.tileRows(columns: t.columns)
            for r0 in stride(from: 0, to: t.rows, by: rows) {
                let r1 = min(t.rows, r0 + rows)
                t.dequantizeRows(r0..<r1, into: tiles.base, context: context)
                gemm(transA: false, transB: false, m: n, n: t.columns, k: r1 - r0, a: dout.base + r0, lda: t.rows,
                     b: tiles.base, ldb: t.columns, beta: r0 == 0 && !accumulate ? 0 : 1, c: dinp.base, ldc: t.columns)
            }
        }
    }
}
