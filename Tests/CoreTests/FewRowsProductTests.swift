// FewRowsProductTests: the decoding products (at most `decodingFewRowsLimit` rows,
// each thread multiplying its own block of the weight's rows with the C
// few-rows kernel) equal the batched products they replace, for dense and NF4
// weights, within f32 rounding (the kernel sums in a different order).
import TestSupport
import Testing
@testable import Core

@Suite struct FewRowsProductTests {
    static func random(_ count: Int, seed: UInt64) -> [Float] {
        var rng = SeededGenerator(seed: seed)
        return (0..<count).map { _ in rng.nextNormal() }
    }

    /// Largest |a − b| relative to the largest |b|.
    static func relativeError(_ a: [Float], _ b: [Float]) -> Float {
        let scale = b.map(abs).max() ?? 1
        return zip(a, b).map { abs($0 - $1) }.max().map { $0 / max(scale, 1e-30) } ?? 0
    }

    @Test(arguments: [1, 2], [1, 2, 3, 4, 5, 12, 16, 17, 24, 32])
    func denseEqualsBatchedProduct(threads: Int, rows: Int) {
        let context = ComputeContext(threads: threads)
        // Depths with and without a 16-wide vector part and a scalar tail; widths with 1–3 columns past a block of 4.
        for (inDim, outDim) in [(64, 200), (96, 17), (48, 1), (1536, 35), (13, 6), (100, 23)] {
            let x = Self.random(rows * inDim, seed: 1), w = Self.random(outDim * inDim, seed: 2)
            var reference = [Float](repeating: 0, count: rows * outDim), few = [Float](repeating: .nan, count: rows * outDim)
            linearForward(&reference, x, w, n: rows, inDim: inDim, outDim: outDim)
            linearForward(&few, x, w, n: rows, inDim: inDim, outDim: outDim, context: context, fewRows: decodingFewRowsLimit)
            #expect(Self.relativeError(few, reference) < 1e-6, "\(rows)×\(inDim) · (\(outDim)×\(inDim))ᵀ")
        }
    }

    /// Each path of the C kernel (AVX-512 where the CPU has it, AVX2, plain C:
    /// the tiles differ by path) against the batched product, at every row
    /// count a tile can end on, with depths and widths that leave tails
    /// (depths below one vector are all tail). On a CPU without AVX-512,
    /// `.widest` runs the AVX2 path again: the AVX-512 tile is checked only
    /// where it runs.
    @Test(arguments: KernelPath.allCases)
    func everyKernelPathEqualsBatchedProduct(path: KernelPath) throws {
        try #require(path == .portable || CPUFeatures.hasAVX2, "the AVX2 path needs an AVX2 CPU (\(CPUFeatures.modelName))")
        for rows in [1, 2, 3, 4, 5, 7, 8, 12, 16, 17, 24, decodingFewRowsLimit] {
            for (inDim, outDim) in [(64, 200), (96, 17), (48, 1), (1536, 35), (13, 6), (100, 23), (8, 5), (24, 9), (5, 7), (3, 4)] {
                let x = Self.random(rows * inDim, seed: 5), w = Self.random(outDim * inDim, seed: 6)
                var reference = [Float](repeating: 0, count: rows * outDim)
                linearForward(&reference, x, w, n: rows, inDim: inDim, outDim: outDim)
                // Written into a wider output (ldc = outDim + 3) whose extra columns must stay untouched.
                let ldc = outDim + 3
                var few = [Float](repeating: .nan, count: rows * ldc)
                ProductPrecision.run(.f32) { fewRowsProduct(&few, ldc: ldc, x, n: rows, w, rows: outDim, depth: inDim, path: path) }
                let product = (0..<rows).flatMap { r in few[(r * ldc)..<(r * ldc + outDim)] }
                #expect(Self.relativeError(product, reference) < 1e-6, "\(path): \(rows)×\(inDim) · (\(outDim)×\(inDim))ᵀ")
                #expect((0..<rows).allSatisfy { r in few[(r * ldc + outDim)..<(r * ldc + ldc)].allSatisfy(\.isNaN) }, "\(path): wrote past a row")
            }
        }
    }

    @Test(arguments: [1, 2], [3, 17, decodingFewRowsLimit])
    func nf4EqualsDequantisedProduct(threads: Int, rows: Int) throws {
        let context = ComputeContext(threads: threads)
        // Enough rows for several dequantisation tiles, with a short last one.
        let outDim = FrozenMatrix.tileRows(columns: 128) * 3 + 40, inDim = 128
        let weights = Self.random(outDim * inDim, seed: 3)
        let tensor = try weights.withUnsafeBufferPointer { try NF4Tensor(quantizing: $0, rows: outDim, columns: inDim, context: context) }
        let matrix = FrozenMatrix.nf4(tensor)
        let dequantised = FloatArena(capacity: outDim * inDim), tiles = FloatArena(capacity: matrix.tileFloats(threads: threads))
        let input = FloatArena(capacity: rows * inDim), output = FloatArena(capacity: rows * outDim)
        let dense = FloatPointer(dequantised.take(outDim * inDim))
        matrix.materialize(into: dense)
        let x = Self.random(rows * inDim, seed: 4)
        let inp = FloatPointer(input.take(rows * inDim)), out = FloatPointer(output.take(rows * outDim))
        inp.base.update(from: x, count: x.count)
        matrix.multiply(out: out, inp: inp, n: rows, tiles: FloatPointer(tiles.take(matrix.tileFloats(threads: threads))), context: context,
                        fewRows: decodingFewRowsLimit)
        var reference = [Float](repeating: 0, count: rows * outDim)
        linearForward(&reference, x, dense.base, n: rows, inDim: inDim, outDim: outDim)
        #expect(Self.relativeError(Array(UnsafeBufferPointer(start: out.base, count: rows * outDim)), reference) < 1e-6)
    }
}
