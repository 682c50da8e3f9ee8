// NF4ProductTests: QLoRA's training products (more than `fewRowsLimit` rows),
// which dequantise the whole NF4 matrix in the product's precision, equal the
// same products on the dequantised matrix, forward and transposed, in f32 and
// in bf16; and the bf16 dequantisation is the nearest-even rounding of the
// Float32 one.
import Testing
import Trial
@testable import Core

@Suite struct NF4ProductTests {
    static func tensor(rows: Int, columns: Int, seed: UInt64, context: ComputeContext) throws -> NF4Tensor {
        let weights = FewRowsProductTests.random(rows * columns, seed: seed)
        return try weights.withUnsafeBufferPointer { try NF4Tensor(quantizing: $0, rows: rows, columns: columns, context: context) }
    }

    /// Odd shapes: blocks straddle rows and the element count is odd, so the
    /// bf16 scratch ends in half a Float.
    @Test(arguments: [1, 2], [(33, 65), (200, 96), (7, 3)])
    func bf16DequantisationRoundsTheFloatOne(threads: Int, shape: (rows: Int, columns: Int)) throws {
        let context = ComputeContext(threads: threads)
        let t = try Self.tensor(rows: shape.rows, columns: shape.columns, seed: 11, context: context)
        var floats = [Float](repeating: .nan, count: t.count)
        t.dequantizeRows(0..<t.rows, into: &floats)
        for rows in [0..<t.rows, 1..<t.rows, 0..<1] {
            var bits = [UInt16](repeating: 0xFFFF, count: rows.count * t.columns)
            bits.withUnsafeMutableBufferPointer { t.dequantizeRowsBFloat16(rows, into: $0.baseAddress!, context: context) }
            let expected = floats[rows.lowerBound * t.columns..<rows.upperBound * t.columns].map(bfloat16Bits)
            #expect(bits == expected, "rows \(rows) of \(t.rows)×\(t.columns)")
            // The same values held in Float32, for bf16 products without bf16 kernels.
            var held = [Float](repeating: .nan, count: rows.count * t.columns)
            held.withUnsafeMutableBufferPointer { t.dequantizeRowsBFloat16Floats(rows, into: $0.baseAddress!, context: context) }
            #expect(held.map(\.bitPattern) == expected.map { UInt32($0) << 16 }, "rows \(rows) of \(t.rows)×\(t.columns)")
        }
    }

    /// In bf16 with and without bf16 kernels (`ProductPrecision.withoutBF16Kernels`:
    /// the base dequantised to bf16 values held in Float32, multiplied in f32).
    @Test(arguments: [(Precision.f32, true), (.bf16, true), (.bf16, false)], [1, 2])
    func trainingProductsEqualTheDequantisedOnes(setting: (precision: Precision, kernels: Bool), threads: Int) throws {
        let precision = setting.precision
        let context = ComputeContext(threads: threads)
        let outDim = 300, inDim = 192, rows = fewRowsLimit + 21
        let t = try Self.tensor(rows: outDim, columns: inDim, seed: 12, context: context)
        let matrix = FrozenMatrix.nf4(t)
        var dense = [Float](repeating: .nan, count: t.count)
        t.dequantizeRows(0..<t.rows, into: &dense)
        let x = FewRowsProductTests.random(rows * inDim, seed: 13), dy = FewRowsProductTests.random(rows * outDim, seed: 14)
        let start = FewRowsProductTests.random(rows * inDim, seed: 15)

        let arena = FloatArena(capacity: matrix.tileFloats(threads: threads) + rows * (2 * inDim + 2 * outDim) + 5 * 16)
        let tiles = FloatPointer(arena.take(matrix.tileFloats(threads: threads)))
        let inp = FloatPointer(arena.take(rows * inDim)), out = FloatPointer(arena.take(rows * outDim))
        let dout = FloatPointer(arena.take(rows * outDim)), dinp = FloatPointer(arena.take(rows * inDim))
        inp.base.update(from: x, count: x.count)
        dout.base.update(from: dy, count: dy.count)
        dinp.base.update(from: start, count: start.count)

        var forward = [Float](repeating: 0, count: rows * outDim), backward = start
        let conversionsBefore = ProductScratch.current.conversions
        func run(_ body: () -> Void) { setting.kernels ? body() : ProductPrecision.withoutBF16Kernels(body) }
        run { ProductPrecision.run(precision) {
            matrix.multiply(out: out, inp: inp, n: rows, tiles: tiles, context: context)
            matrix.multiplyTransposed(dinp: dinp, dout: dout, n: rows, accumulate: true, tiles: tiles, context: context)
            // The references: the same products with the dequantised matrix as a plain Float32 operand.
            gemm(transA: false, transB: true, m: rows, n: outDim, k: inDim, a: x, lda: inDim, b: dense, ldb: inDim,
                 beta: 0, c: &forward, ldc: outDim)
            gemm(transA: false, transB: false, m: rows, n: inDim, k: outDim, a: dy, lda: outDim, b: dense, ldb: inDim,
                 beta: 1, c: &backward, ldc: inDim)
        } }
        // Only bf16 kernels convert operands to bf16 bits: the f32 path rounds them in Float32.
        let converted = ProductScratch.current.conversions > conversionsBefore
        #expect(converted == (precision == .bf16 && setting.kernels && MatmulEngine.hasBF16Kernels), "\(setting)")
        let got = Array(UnsafeBufferPointer(start: out.base, count: rows * outDim))
        let gotBackward = Array(UnsafeBufferPointer(start: dinp.base, count: rows * inDim))
        #expect(FewRowsProductTests.relativeError(got, forward) < 1e-6, "forward, \(setting)")
        #expect(FewRowsProductTests.relativeError(gotBackward, backward) < 1e-6, "transposed, \(setting)")
        // And bf16 really is bf16: far from the f32 product on the same operands.
        if precision == .bf16 {
            var f32 = [Float](repeating: 0, count: rows * outDim)
            gemm(transA: false, transB: true, m: rows, n: outDim, k: inDim, a: x, lda: inDim, b: dense, ldb: inDim,
                 beta: 0, c: &f32, ldc: outDim)
            #expect(FewRowsProductTests.relativeError(got, f32) > 1e-4)
        }
    }
}
