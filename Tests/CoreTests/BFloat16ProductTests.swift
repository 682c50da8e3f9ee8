// BFloat16ProductTests: bf16 rounding as PyTorch rounds, and bf16 products
// (bf16 inputs, f32 accumulation) on both engines equal the definition taken
// over the rounded inputs — and not the f32 product, so a product that
// skipped the rounding fails.
import Foundation
import Testing
import Trial
@testable import Core
import TestSupport

@Suite struct BFloat16ProductTests {
    /// Values whose bf16 rounding is known: ties go to even, NaN stays NaN.
    @Test func roundsToNearestEven() {
        #expect(bfloat16Bits(1) == 0x3F80)
        #expect(bfloat16Bits(-2) == 0xC000)
        #expect(bfloat16Bits(1 + 0x1p-8) == 0x3F80)  // halfway, 0x3F80 is even
        #expect(bfloat16Bits(1 + 3 * 0x1p-8) == 0x3F82)  // halfway, 0x3F81 is odd
        #expect(bfloat16Bits(1 + 0x1p-8 + 0x1p-20) == 0x3F81)  // above halfway
        #expect(bfloat16Bits(.infinity) == 0x7F80)
        #expect(bfloat16Bits(.greatestFiniteMagnitude) == 0x7F80)  // rounds up to infinity, as torch does
        #expect(floatFromBFloat16(bfloat16Bits(.nan)).isNaN)
        #expect(roundedToBFloat16(3.14159265) == 3.140625)
    }

    /// The sixteen-lane conversion (AVX-512, what every machine of this project runs) and its plain C
    /// loop round as the scalar Swift does, specials and ties included, with a tail and a leading dimension.
    @Test(arguments: [false, true])
    func vectorConversionEqualsScalar(portable: Bool) {
        var rng = SeededGenerator(seed: 5)
        var values: [Float] = [1 + 0x1p-8, 1 + 3 * 0x1p-8, .nan, -.nan, .infinity, -.infinity, .greatestFiniteMagnitude,
                               .leastNonzeroMagnitude, -0.0, 0, Float(bitPattern: 0x7F80_0001), Float(bitPattern: 0x3F80_8000)]
        values += (0..<47).map { _ in rng.nextNormal() * 1e3 }
        var converted = [UInt16](repeating: 0, count: values.count)
        convertToBFloat16(&converted, values, rows: 1, columns: values.count, ld: values.count, portable: portable)
        #expect(converted == values.map(bfloat16Bits))
        // Three rows of 17 out of rows of 19: each row's tail, and nothing past it.
        var block = [UInt16](repeating: 0xDEAD, count: 3 * 17 + 1)
        convertToBFloat16(&block, values, rows: 3, columns: 17, ld: 19, portable: portable)
        var expected: [UInt16] = []
        for r in 0..<3 { expected += values[(r * 19)..<(r * 19 + 17)].map(bfloat16Bits) }
        #expect(Array(block[..<(3 * 17)]) == expected)
        #expect(block.last == 0xDEAD)
    }

    /// Where the CPU converts Float32 to bf16 itself (AVX512_BF16, thirty-two
    /// lanes at a time), it flushes subnormal inputs to zero, which PyTorch
    /// rounds: blocks holding one must take the integer rounding. Random bit
    /// patterns (NaNs, infinities, ~0.4% subnormals: about one block of 32 in
    /// eight holds one), a row of normal values (every block converted by the
    /// CPU) and a subnormal at each position of a block all round as the
    /// scalar definition does.
    @Test func theCPUsOwnConversionRoundsAsTheScalarDoes() {
        var rng = SeededGenerator(seed: 9)
        var patterns = (0..<4096).map { _ in Float(bitPattern: UInt32(truncatingIfNeeded: rng.next())) }
        patterns += (0..<4096).map { _ in rng.nextNormal() * 3 }  // normal values: whole blocks for the CPU
        for position in 0..<32 {
            var block = (0..<32).map { Float($0) + 0.5 + 0x1p-9 }
            block[position] = (position % 2 == 0 ? 1 : -1) * Float(bitPattern: UInt32(1 + position * 100_003))  // a subnormal
            patterns += block
        }
        var converted = [UInt16](repeating: 0, count: patterns.count)
        convertToBFloat16(&converted, patterns, rows: 1, columns: patterns.count, ld: patterns.count)
        let expected = patterns.map(bfloat16Bits)
        let wrong = zip(converted, expected).enumerated().filter { $0.element.0 != $0.element.1 }
        #expect(wrong.isEmpty, "\(wrong.count) values: first \(wrong.prefix(3).map { (patterns[$0.offset].bitPattern, $0.element) })")
        // The subnormals themselves round to bf16 subnormals, not to zero.
        #expect(bfloat16Bits(Float(bitPattern: 0x0001_8000)) == 0x0002 && bfloat16Bits(-Float(bitPattern: 0x0000_8001)) == 0x8001)
        if !CPUFeatures.hasAVX512BF16 {
            let ran = CPUFeatures.hasAVX512 ? "the sixteen-lane rounding" : "the plain rounding"
            print("note: no AVX512_BF16 on \(CPUFeatures.modelName): \(ran) ran")
        }
    }

    /// The f32 path's conversions (rounding kept in Float32, and widening bf16
    /// bits) equal the scalar definitions, specials and ties included, with a
    /// leading dimension and nothing written past each row.
    @Test func floatRoundingAndWideningEqualScalar() {
        var rng = SeededGenerator(seed: 6)
        var values: [Float] = [1 + 0x1p-8, 1 + 3 * 0x1p-8, .infinity, -.infinity, .greatestFiniteMagnitude,
                               .leastNonzeroMagnitude, -0.0, 0, Float(bitPattern: 0x3F80_8000)]
        values += (0..<48).map { _ in rng.nextNormal() * 1e3 }
        var rounded = [Float](repeating: 7, count: 3 * 17 + 1)
        roundToBFloat16Floats(&rounded, values, rows: 3, columns: 17, ld: 19)
        var expected: [Float] = []
        for r in 0..<3 { expected += values[(r * 19)..<(r * 19 + 17)].map(roundedToBFloat16) }
        #expect(Array(rounded[..<(3 * 17)]).map(\.bitPattern) == expected.map(\.bitPattern))
        #expect(rounded.last == 7)
        // NaNs stay NaN, made quiet: a signalling one's bits as bfloat16Bits gives them.
        let nans = [Float.nan, -Float.nan, Float(bitPattern: 0x7F80_0001), Float(bitPattern: 0xFFC1_2345)]
        var roundedNaNs = [Float](repeating: 0, count: nans.count)
        roundToBFloat16Floats(&roundedNaNs, nans, rows: 1, columns: nans.count, ld: nans.count)
        #expect(roundedNaNs.map(\.bitPattern) == nans.map { UInt32(bfloat16Bits($0)) << 16 })
        #expect(roundedNaNs[2].bitPattern == 0x7FC0_0000)
        let bits = values.map(bfloat16Bits)
        var widened = [Float](repeating: 7, count: 3 * 17 + 1)
        convertFromBFloat16(&widened, bits, rows: 3, columns: 17, ld: 19)
        expected = []
        for r in 0..<3 { expected += bits[(r * 19)..<(r * 19 + 17)].map(floatFromBFloat16) }
        #expect(Array(widened[..<(3 * 17)]).map(\.bitPattern) == expected.map(\.bitPattern))
        #expect(widened.last == 7)
    }

    /// The definition over bf16-rounded operands (what a bf16 product with f32 accumulation computes).
    static func roundedReference(_ t: MatmulEngineTests.Case) -> (a: [Float], b: [Float], c: [Float], lda: Int, ldb: Int, ldc: Int, expected: [Float], f32: [Float]) {
        let lda = (t.transA ? t.m : t.k) + t.pad, ldb = (t.transB ? t.k : t.n) + t.pad, ldc = t.n + t.pad
        var rng = SeededGenerator(seed: 12)
        let a = (0..<((t.transA ? t.k : t.m) * lda)).map { _ in rng.nextNormal() }
        let b = (0..<((t.transB ? t.n : t.k) * ldb)).map { _ in rng.nextNormal() }
        let c = (0..<(t.m * ldc)).map { _ in rng.nextNormal() }
        let expected = MatmulEngineTests.reference(t, a: a.map(roundedToBFloat16), lda: lda, b: b.map(roundedToBFloat16), ldb: ldb, c: c, ldc: ldc)
        let f32 = MatmulEngineTests.reference(t, a: a, lda: lda, b: b, ldb: ldb, c: c, ldc: ldc)
        return (a, b, c, lda, ldb, ldc, expected, f32)
    }

    /// Where a bf16 product can run: oneDNN's bf16 kernels, oneDNN's f32
    /// matmul over the rounded inputs (a CPU without bf16 kernels; run here
    /// on every CPU), and OpenBLAS's sgemm over them.
    enum Path: String, CaseIterable, Sendable, CustomStringConvertible {
        case oneDNNKernels, oneDNNFloat, openBLAS
        var description: String { rawValue }
        var engine: MatmulEngine { self == .openBLAS ? .openBLAS : .oneDNN }
        var bf16Kernels: Bool { self == .oneDNNKernels }

        /// Fails when oneDNN is missing; says when the kernels' case ran the
        /// f32 path, as it must on a CPU without AVX-512 (OneDNNReuseTests.bf16Refused
        /// checks that), so that a pass there is not read as oneDNN's bf16 kernels'.
        func check() throws {
            guard engine == .oneDNN else { return }
            try #require(OneDNNMatmul.isAvailable, "oneDNN's CPU engine could not be created (libdnnl-dev, scripts/setup.sh)")
            if self == .oneDNNKernels, !OneDNNMatmul.supportsBF16 {
                print("note: oneDNN has no bf16 matmul on \(CPUFeatures.modelName): the kernels' case ran oneDNN's f32 matmul")
            }
        }

        func product(_ t: MatmulEngineTests.Case, a: ProductOperand, lda: Int, b: ProductOperand, ldb: Int,
                     c: UnsafeMutablePointer<Float>, ldc: Int, widenedBlock: Int = widenedBlockElements) {
            gemmBFloat16(transA: t.transA, transB: t.transB, m: t.m, n: t.n, k: t.k, alpha: t.alpha, a: a, lda: lda,
                         b: b, ldb: ldb, beta: t.beta, c: c, ldc: ldc, engine: engine,
                         bf16Kernels: bf16Kernels && OneDNNMatmul.supportsBF16, widenedBlock: widenedBlock)
        }
    }

    static let arguments: [(MatmulEngineTests.Case, Path)] = MatmulEngineTests.cases.flatMap { t in
        Path.allCases.map { (t, $0) }
    }

    @Test(arguments: arguments)
    func bf16ProductEqualsRoundedDefinition(_ t: MatmulEngineTests.Case, path: Path) throws {
        try path.check()
        let r = Self.roundedReference(t)
        var c = r.c
        let executions = OneDNNMatmul.executionsOnThisThread
        r.a.withUnsafeBufferPointer { a in
            r.b.withUnsafeBufferPointer { b in
                path.product(t, a: .f32(a.baseAddress!), lda: r.lda, b: .f32(b.baseAddress!), ldb: r.ldb, c: &c, ldc: r.ldc)
            }
        }
        // The oneDNN paths ran on oneDNN, not on the sgemm they fall back to.
        #expect((OneDNNMatmul.executionsOnThisThread > executions) == (path.engine == .oneDNN), "\(path): \(t)")
        #expect(FewRowsProductTests.relativeError(c, r.expected) < 1e-5, "\(path): \(t)")
        // The rounding is visible: bf16 keeps 8 significant bits, so the f32 product differs by ~1e-3.
        #expect(FewRowsProductTests.relativeError(c, r.f32) > 1e-4, "\(path): \(t) looks like an f32 product")
    }

    /// On the f32 path a large bf16 B is widened and multiplied a block of
    /// its rows at a time: blocks of C's columns (B transposed) or of the
    /// sums' terms, C summing them (B plain). With blocks of 1, 3 and 5 rows,
    /// tails included, the product is the definition's, and within 1e-6 of
    /// the same product widened whole.
    /// (Two cases beyond the engine tests': B plain with beta 0.5 and 0, where a block that
    /// applied beta again, or dropped the blocks before it, would show.)
    @Test(arguments: MatmulEngineTests.cases + [
        MatmulEngineTests.Case(transA: false, transB: false, m: 9, n: 21, k: 40, pad: 2, alpha: 1.5, beta: 0.5),
        MatmulEngineTests.Case(transA: true, transB: false, m: 6, n: 13, k: 23, pad: 0, alpha: 1, beta: 0),
    ], [Path.oneDNNFloat, .openBLAS])
    func blocksOfALargeBF16OperandGiveTheWholeProduct(_ t: MatmulEngineTests.Case, path: Path) throws {
        try path.check()
        let r = Self.roundedReference(t)
        let bits = r.b.map(bfloat16Bits)
        let bColumns = t.transB ? t.k : t.n
        func run(widenedBlock: Int) -> [Float] {
            var c = r.c
            r.a.withUnsafeBufferPointer { a in
                bits.withUnsafeBufferPointer { b in
                    path.product(t, a: .f32(a.baseAddress!), lda: r.lda, b: .bf16(b.baseAddress!), ldb: r.ldb, c: &c, ldc: r.ldc,
                                 widenedBlock: widenedBlock)
                }
            }
            return c
        }
        let whole = run(widenedBlock: Int.max)
        #expect(FewRowsProductTests.relativeError(whole, r.expected) < 1e-5, "\(path): \(t)")
        for rows in [1, 3, 5] {
            let blocked = run(widenedBlock: rows * bColumns)
            #expect(FewRowsProductTests.relativeError(blocked, r.expected) < 1e-5, "\(path), \(rows) rows: \(t)")
            #expect(FewRowsProductTests.relativeError(blocked, whole) < 1e-6, "\(path), \(rows) rows: \(t)")
        }
    }

    /// A matrix stored in bf16, or its bf16 values held in Float32, gives the
    /// same product as its Float32 source rounded on the fly.
    @Test(arguments: Path.allCases)
    func storedBF16OperandEqualsRoundedFloat(_ path: Path) throws {
        try path.check()
        let t = MatmulEngineTests.Case(transA: false, transB: true, m: 5, n: 48, k: 40, pad: 0, alpha: 1, beta: 0)
        var rng = SeededGenerator(seed: 3)
        let x = (0..<(t.m * t.k)).map { _ in rng.nextNormal() }, w = (0..<(t.n * t.k)).map { _ in rng.nextNormal() }
        let stored = w.withUnsafeBufferPointer { BFloat16Matrix($0.baseAddress!, rows: t.n, columns: t.k, context: ComputeContext(threads: 2)) }
        let held = w.map(roundedToBFloat16)
        var fromFloat = [Float](repeating: 0, count: t.m * t.n), fromStored = fromFloat, fromHeld = fromFloat
        x.withUnsafeBufferPointer { x in
            w.withUnsafeBufferPointer { w in
                path.product(t, a: .f32(x.baseAddress!), lda: t.k, b: .f32(w.baseAddress!), ldb: t.k, c: &fromFloat, ldc: t.n)
                path.product(t, a: .f32(x.baseAddress!), lda: t.k, b: .bf16(stored.base), ldb: t.k, c: &fromStored, ldc: t.n)
            }
            held.withUnsafeBufferPointer { held in
                path.product(t, a: .f32(x.baseAddress!), lda: t.k, b: .bf16Floats(held.baseAddress!), ldb: t.k, c: &fromHeld, ldc: t.n)
            }
        }
        #expect(fromFloat == fromStored)
        #expect(fromFloat == fromHeld)
        var widened = [Float](repeating: 0, count: t.n * t.k)
        stored.widen(into: &widened)
        #expect(widened == w.map(roundedToBFloat16))
    }

    /// `gemm` multiplies in bf16 inside `ProductPrecision.run(.bf16)`, on the
    /// calling thread and on `parallelFor`'s workers, and in f32 outside.
    @Test func precisionReachesGemmOnEveryThread() {
        let t = MatmulEngineTests.cases[0]
        let r = Self.roundedReference(t)
        let context = ComputeContext(threads: 2)
        func run() -> [[Float]] {
            var outputs = [[Float]](repeating: r.c, count: 2)
            let box = UncheckedSendable(outputs.withUnsafeMutableBufferPointer { $0.baseAddress! })
            context.parallelFor(2) { range in
                for i in range {
                    box.value[i].withUnsafeMutableBufferPointer { c in
                        gemm(transA: t.transA, transB: t.transB, m: t.m, n: t.n, k: t.k, alpha: t.alpha, a: r.a, lda: r.lda,
                             b: r.b, ldb: r.ldb, beta: t.beta, c: c.baseAddress!, ldc: r.ldc)
                    }
                }
            }
            return outputs
        }
        #expect(ProductPrecision.current == .f32)
        for output in ProductPrecision.run(.bf16, run) {
            #expect(FewRowsProductTests.relativeError(output, r.expected) < 1e-5)
            #expect(FewRowsProductTests.relativeError(output, r.f32) > 1e-4)
        }
        #expect(ProductPrecision.current == .f32)
        for output in run() { #expect(FewRowsProductTests.relativeError(output, r.f32) < 1e-5) }
    }
}
