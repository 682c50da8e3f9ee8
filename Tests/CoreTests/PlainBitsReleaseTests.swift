// PlainBitsReleaseTests: a frozen bf16 matrix that packs lets its plain bits
// go once both directions' packed copies exist, computes the same products
// from the copies alone, and makes the bits again, exactly, for whatever
// still reads them (an export, a CPU path without bf16 kernels, a write to
// the source it rounds).
import Foundation
import Testing
@testable import Core
import TestSupport

@Suite struct PlainBitsReleaseTests {
    static let rows = 192, columns = 128, m = 24

    /// Seeded N(0, 1) values: a weight (rows × columns) or an input.
    static func values(_ count: Int, seed: UInt64) -> [Float] {
        var rng = SeededGenerator(seed: seed)
        return (0..<count).map { _ in rng.nextNormal() }
    }

    /// Whether two results are the same Floats, bit for bit (a Bool, so
    /// that a failure does not print thousands of values).
    static func same(_ a: [Float], _ b: [Float]) -> Bool {
        a.count == b.count && zip(a, b).allSatisfy { $0.bitPattern == $1.bitPattern }
    }

    /// Whether this CPU packs bf16 copies at all (oneDNN's bf16 kernels, on
    /// AVX-512): without them no copy is made and the bits are never
    /// released, which the callers check instead and say so.
    static func packsHere() throws -> Bool {
        try #require(OneDNNMatmul.isAvailable, "oneDNN's CPU engine could not be created (libdnnl-dev, scripts/setup.sh)")
        try #require(BFloat16Matrix.releasesPlainBits, "\(BFloat16Matrix.releaseEnvironmentKey)=off is set")
        try #require(OneDNNMatmul.reuse, "\(OneDNNMatmul.reuseEnvironmentKey)=off is set: no packed copies are made")
        if !MatmulEngine.hasBF16Kernels {
            print("note: no bf16 kernels on \(CPUFeatures.modelName): checked that the plain bits are kept")
        }
        return MatmulEngine.hasBF16Kernels
    }

    /// X · Wᵀ (m × rows) and dY · W (m × columns) through `matrix`'s products.
    static func products(_ matrix: BFloat16Matrix, x: [Float], dy: [Float]) -> (forward: [Float], backward: [Float]) {
        var forward = [Float](repeating: 0, count: m * rows), backward = [Float](repeating: 0, count: m * columns)
        let context = ComputeContext(threads: 2)
        matrix.product(transB: true, m: m, a: x, beta: 0, c: &forward, context: context)
        matrix.product(transB: false, m: m, a: dy, beta: 0, c: &backward, context: context)
        return (forward, backward)
    }

    /// Seeded weights (rows × columns), an input and an output gradient.
    static func operands(seed: UInt64) -> (w: [Float], x: [Float], dy: [Float]) {
        (values(rows * columns, seed: seed), values(m * columns, seed: seed + 1), values(m * rows, seed: seed + 2))
    }

    /// Runs `body` with a frozen matrix that packs, made from `w` (which it
    /// rereads, `rereadsSource`, while `body` runs).
    static func withPackingMatrix<Result>(_ w: [Float], rereadsSource: Bool = false,
                                          _ body: (BFloat16Matrix) throws -> Result) rethrows -> Result {
        try w.withUnsafeBufferPointer { w in
            try body(BFloat16Matrix(w.baseAddress!, rows: rows, columns: columns, context: ComputeContext(threads: 2), packs: true,
                                    rereadsSource: rereadsSource))
        }
    }

    /// The first forward packs one direction and keeps the bits; the first
    /// backward packs the other and lets them go. Later products read only
    /// the copies and give the same numbers, bit for bit.
    @Test(arguments: [false, true])
    func releasedOnceBothDirectionsArePacked(rereadsSource: Bool) throws {
        let packs = try Self.packsHere()
        let (w, x, dy) = Self.operands(seed: 1)
        try Self.withPackingMatrix(w, rereadsSource: rereadsSource) { matrix in
            var forward = [Float](repeating: 0, count: Self.m * Self.rows)
            matrix.product(transB: true, m: Self.m, a: x, beta: 0, c: &forward, context: ComputeContext(threads: 2))
            #expect(matrix.holdsPlainBits, "released after one direction only")
            let first = Self.products(matrix, x: x, dy: dy)
            #expect(Self.same(first.forward, forward))
            try #require(matrix.holdsPlainBits == !packs, packs ? "kept after both directions were packed" : "released without copies")
            let again = Self.products(matrix, x: x, dy: dy)
            #expect(Self.same(again.forward, first.forward), "the forward changed once the bits were released")
            #expect(Self.same(again.backward, first.backward), "the backward changed once the bits were released")
            #expect(matrix.holdsPlainBits == !packs)
            // A product of no rows multiplies nothing and makes no bits again.
            matrix.product(transB: true, m: 0, a: x, beta: 0, c: &forward, context: ComputeContext(threads: 2))
            #expect(matrix.holdsPlainBits == !packs, "a product of no rows made the plain bits again")

            // Against a matrix that never packs: the values are the same, only the layout differs.
            let plain = w.withUnsafeBufferPointer {
                BFloat16Matrix($0.baseAddress!, rows: Self.rows, columns: Self.columns, context: ComputeContext(threads: 1))
            }
            let reference = Self.products(plain, x: x, dy: dy)
            #expect(FewRowsProductTests.relativeError(again.forward, reference.forward) < 1e-6)
            #expect(FewRowsProductTests.relativeError(again.backward, reference.backward) < 1e-6)
        }
    }

    /// At SmolLM2's projection shapes and its head's, oneDNN's bf16
    /// primitives for decoding's single rows, the verification passes' tens
    /// and batch 8's hundreds read the layouts a batch-1 step packed: none of
    /// them makes the plain bits again (which would bring back their memory,
    /// and oneDNN's re-blocking in every call).
    @Test(arguments: [(192, 576), (576, 576), (1536, 576), (576, 1536), (49152, 576)])
    func everyRowCountReadsTheSameCopies(rows: Int, columns: Int) throws {
        let packs = try Self.packsHere()
        let w = Self.values(rows * columns, seed: 13)
        let context = ComputeContext(threads: 2)
        try w.withUnsafeBufferPointer { w in
            let matrix = BFloat16Matrix(w.baseAddress!, rows: rows, columns: columns, context: context, packs: true)
            func run(_ m: Int) {
                let x = Self.values(m * columns, seed: 14), dy = Self.values(m * rows, seed: 15)
                var forward = [Float](repeating: 0, count: m * rows), backward = [Float](repeating: 0, count: m * columns)
                matrix.product(transB: true, m: m, a: x, beta: 0, c: &forward, context: context)
                matrix.product(transB: false, m: m, a: dy, beta: 0, c: &backward, context: context)
            }
            run(62)
            try #require(matrix.holdsPlainBits == !packs)
            for m in [1, 2, 5, 17, 33, 64, 130, 500] {
                run(m)
                #expect(matrix.holdsPlainBits == !packs, "\(m) rows made the plain bits again at \(rows) × \(columns)")
            }
        }
    }

    /// An export widens the values from bits made again (from the packed
    /// copy, or from the source), exactly the rounding of the weight, and
    /// lets them go again afterwards.
    @Test(arguments: [false, true])
    func widenedAfterReleaseIsTheRounding(rereadsSource: Bool) throws {
        let packs = try Self.packsHere()
        let (w, x, dy) = Self.operands(seed: 4)
        try Self.withPackingMatrix(w, rereadsSource: rereadsSource) { matrix in
            _ = Self.products(matrix, x: x, dy: dy)
            try #require(matrix.holdsPlainBits == !packs)
            var widened = [Float](repeating: 0, count: w.count)
            matrix.widen(into: &widened)
            #expect(Self.same(widened, w.map(roundedToBFloat16)), "the bits made again differ from the rounding")
            #expect(matrix.holdsPlainBits == !packs, "an export kept the bits")
        }
    }

    /// A product that reads the plain bits after their release (here the
    /// path without bf16 kernels, which multiplies them widened) gets them
    /// made again, computes what a never-released matrix computes, and
    /// keeps them: such a product would otherwise make them every call.
    @Test func plainReaderAfterReleaseKeepsTheBits() throws {
        let packs = try Self.packsHere()
        let (w, x, dy) = Self.operands(seed: 7)
        try Self.withPackingMatrix(w) { matrix in
            let packed = Self.products(matrix, x: x, dy: dy)
            try #require(matrix.holdsPlainBits == !packs)
            let plain = w.withUnsafeBufferPointer {
                BFloat16Matrix($0.baseAddress!, rows: Self.rows, columns: Self.columns, context: ComputeContext(threads: 1))
            }
            let expected = ProductPrecision.withoutBF16Kernels { Self.products(plain, x: x, dy: dy) }
            let got = ProductPrecision.withoutBF16Kernels { Self.products(matrix, x: x, dy: dy) }
            #expect(Self.same(got.forward, expected.forward))
            #expect(Self.same(got.backward, expected.backward))
            #expect(matrix.holdsPlainBits, "bits read by every such product were released again")
            let later = Self.products(matrix, x: x, dy: dy)
            #expect(Self.same(later.forward, packed.forward) && Self.same(later.backward, packed.backward))
            #expect(matrix.holdsPlainBits)
        }
    }

    /// A matrix that rereads its source (a model's bf16 head) after a write
    /// and `invalidate` rounds the written values into bits made again,
    /// packs them, computes what a matrix made from the written weight
    /// computes, and lets the bits go again once both directions are packed.
    @Test func writtenSourceIsReadAfterRelease() throws {
        let packs = try Self.packsHere()
        let operands = Self.operands(seed: 10), x = operands.x, dy = operands.dy
        var w = operands.w
        try w.withUnsafeMutableBufferPointer { w in
            let matrix = BFloat16Matrix(w.baseAddress!, rows: Self.rows, columns: Self.columns, context: ComputeContext(threads: 2),
                                        packs: true, rereadsSource: true)
            let original = Self.products(matrix, x: x, dy: dy)
            try #require(matrix.holdsPlainBits == !packs)
            for i in stride(from: 0, to: w.count, by: 7) { w[i] += 0.25 }
            matrix.invalidate()
            let written = BFloat16Matrix(w.baseAddress!, rows: Self.rows, columns: Self.columns, context: ComputeContext(threads: 2),
                                         packs: true)
            let expected = Self.products(written, x: x, dy: dy)
            let got = Self.products(matrix, x: x, dy: dy)
            #expect(FewRowsProductTests.relativeError(expected.forward, original.forward) > 1e-3, "the write did not change the product")
            #expect(Self.same(got.forward, expected.forward), "the forward read the weight before the write")
            #expect(Self.same(got.backward, expected.backward), "the backward read the weight before the write")
            #expect(matrix.holdsPlainBits == !packs)
        }
    }
}
