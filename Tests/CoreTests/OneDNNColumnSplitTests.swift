// OneDNNColumnSplitTests: a product that oneDNN's AVX2 sgemm would read B of
// in place with an L1-thrashing stride runs as two products (the first
// columns of C, then the rest off B's 32-byte alignment), and the two give
// the product of the definition, on any CPU (the split is forced here; a
// process splits only where oneDNN's sgemm is its AVX2 one).
import Foundation
import Testing
@testable import Core
import TestSupport

@Suite struct OneDNNColumnSplitTests {
    /// A backward-shaped product: 67 rows through a plain B whose rows are 1 KiB apart.
    static func key(m: Int = 67, n: Int = 256, k: Int = 96, ldb: Int = 256, transB: Bool = false, beta: Float = 1,
                    bf16: Bool = false) -> OneDNNMatmul.Key {
        OneDNNMatmul.Key(transA: false, transB: transB, m: m, n: n, k: k, lda: k, ldb: ldb, ldc: n + 3,
                         alpha: 0.5, beta: beta, bf16: bf16, threads: 2)
    }

    /// 64-byte aligned Float32 storage (Swift arrays give no 32-byte alignment).
    final class Aligned {
        let base: UnsafeMutablePointer<Float>
        let count: Int
        init(_ values: [Float]) {
            count = values.count
            base = UnsafeMutableRawPointer.allocate(byteCount: 4 * max(1, count), alignment: 64).bindMemory(to: Float.self, capacity: count)
            base.initialize(from: values, count: count)
        }
        var array: [Float] { Array(UnsafeBufferPointer(start: base, count: count)) }
        deinit { base.deallocate() }
    }

    @Test func splitsOnlyWhatOneDNNWouldReadInPlace() throws {
        let b = Aligned([Float](repeating: 0, count: 64))
        let aligned = UnsafeRawPointer(b.base), off = UnsafeRawPointer(b.base + 1)
        let split = try #require(OneDNNMatmul.columnSplit(Self.key(n: 2048, k: 8192, ldb: 2048), b: aligned))
        #expect(split.strip.n == OneDNNMatmul.splitColumns && split.rest.n == 2048 - OneDNNMatmul.splitColumns)
        #expect(split.strip.ldb == 2048 && split.rest.ldb == 2048 && split.rest.ldc == split.strip.ldc)
        #expect(OneDNNMatmul.columnSplit(Self.key(n: 2048, ldb: 2048), b: off) == nil, "B off its alignment is already copied")
        #expect(OneDNNMatmul.columnSplit(Self.key(n: 576, ldb: 576), b: aligned) == nil, "a stride that spreads over L1's sets")
        #expect(OneDNNMatmul.columnSplit(Self.key(n: 256, ldb: 256, transB: true), b: aligned) == nil, "a transposed B is packed by oneDNN")
        #expect(OneDNNMatmul.columnSplit(Self.key(m: 512, n: 2048, ldb: 2048), b: aligned) == nil, "batch 8's rows take the copying path")
        #expect(OneDNNMatmul.columnSplit(Self.key(bf16: true), b: aligned) == nil)
        #expect(OneDNNMatmul.columnSplit(Self.key(n: 8, ldb: 256), b: aligned) == nil, "too few columns to split")
    }

    /// Products the split takes: the backward's shape (B plain, rows 1 KiB
    /// apart), with B a slice of wider rows (ldb > n), and LoRA's update of
    /// A (`dA += dZᵀ·X`: A transposed, rank-many rows, beta 1).
    static let splitCases: [(OneDNNMatmul.Key, Bool)] = [
        (key(beta: 0), true), (key(beta: 1), true), (key(beta: 1), false),
        (key(n: 256, ldb: 512), true),
        (OneDNNMatmul.Key(transA: true, transB: false, m: 8, n: 256, k: 67, lda: 10, ldb: 512, ldc: 259,
                          alpha: 0.5, beta: 1, bf16: false, threads: 2), true),
        (OneDNNMatmul.Key(transA: true, transB: false, m: 8, n: 256, k: 67, lda: 10, ldb: 512, ldc: 259,
                          alpha: 0.5, beta: 1, bf16: false, threads: 2), false),
    ]

    /// The split product equals the definition (and the whole product) and
    /// ran as two oneDNN executions, with and without reuse.
    @Test(arguments: splitCases)
    func splitProductIsTheProduct(key: OneDNNMatmul.Key, reuse: Bool) throws {
        try #require(OneDNNMatmul.isAvailable, "oneDNN's CPU engine could not be created (libdnnl-dev, scripts/setup.sh)")
        var rng = SeededGenerator(seed: 11)
        let a = Aligned((0..<((key.transA ? key.k : key.m) * key.lda)).map { _ in rng.nextUniform() - 0.5 })
        let b = Aligned((0..<(key.k * key.ldb)).map { _ in rng.nextUniform() - 0.5 })
        let c0 = (0..<(key.m * key.ldc)).map { _ in rng.nextUniform() - 0.5 }
        let t = MatmulEngineTests.Case(transA: key.transA, transB: false, m: key.m, n: key.n, k: key.k, pad: 0, alpha: key.alpha,
                                       beta: key.beta)
        let expected = MatmulEngineTests.reference(t, a: a.array, lda: key.lda, b: b.array, ldb: key.ldb, c: c0, ldc: key.ldc)
        #expect(OneDNNMatmul.columnSplit(key, b: UnsafeRawPointer(b.base)) != nil)

        func run(splitting: Bool) -> (c: [Float], executions: Int) {
            let c = Aligned(c0)
            let before = OneDNNMatmul.executionsOnThisThread
            let ran = OneDNNMatmul.run(key, a: UnsafeMutableRawPointer(a.base), b: UnsafeMutableRawPointer(b.base), c: c.base,
                                       reuse: reuse, splitsColumns: splitting)
            #expect(ran, "oneDNN refused \(key)")
            return (c.array, OneDNNMatmul.executionsOnThisThread - before)
        }
        let whole = run(splitting: false), split = run(splitting: true)
        #expect(FewRowsProductTests.relativeError(split.c, expected) < 1e-5, "\(key)")
        #expect(FewRowsProductTests.relativeError(split.c, whole.c) < 1e-5, "\(key)")
        // Padding columns of C (ldc > n) are never written.
        for i in 0..<key.m { #expect(split.c[(i * key.ldc + key.n)..<((i + 1) * key.ldc)] == c0[(i * key.ldc + key.n)..<((i + 1) * key.ldc)]) }
        if reuse { #expect(whole.executions == 1 && split.executions == 2, "the split did not run as two products") }
    }

    /// The split's second product failing after its first ran: its columns
    /// are finished on OpenBLAS, each accumulated once (beta 1), and the
    /// whole product reports success, so no caller's fallback runs it again.
    /// A first product failing runs nothing more and reports failure.
    @Test(arguments: [false, true])
    func aFailedHalfIsFinishedOnceOrNotAtAll(stripFails: Bool) throws {
        try #require(OneDNNMatmul.isAvailable, "oneDNN's CPU engine could not be created (libdnnl-dev, scripts/setup.sh)")
        let key = Self.key(beta: 1)
        var rng = SeededGenerator(seed: 13)
        let a = Aligned((0..<(key.m * key.lda)).map { _ in rng.nextUniform() - 0.5 })
        let b = Aligned((0..<(key.k * key.ldb)).map { _ in rng.nextUniform() - 0.5 })
        let c0 = (0..<(key.m * key.ldc)).map { _ in rng.nextUniform() - 0.5 }
        let t = MatmulEngineTests.Case(transA: false, transB: false, m: key.m, n: key.n, k: key.k, pad: 0, alpha: key.alpha,
                                       beta: key.beta)
        let expected = MatmulEngineTests.reference(t, a: a.array, lda: key.lda, b: b.array, ldb: key.ldb, c: c0, ldc: key.ldc)
        let c = Aligned(c0)
        var calls: [(b: UnsafeMutableRawPointer, c: UnsafeMutablePointer<Float>)] = []
        let ran = OneDNNMatmul.runSplit(key, a: UnsafeMutableRawPointer(a.base), b: UnsafeMutableRawPointer(b.base), c: c.base) {
            _, bHalf, cHalf in
            calls.append((bHalf, cHalf))
            if calls.count == 1, !stripFails {
                // The first product as oneDNN would have run it: C's first columns.
                for i in 0..<key.m {
                    for j in 0..<OneDNNMatmul.splitColumns { cHalf[i * key.ldc + j] = expected[i * key.ldc + j] }
                }
                return true
            }
            return false
        }
        let result = c.array
        if stripFails {
            #expect(ran == false && calls.count == 1, "a failed first product must stop the split")
            #expect(result == c0, "nothing may be written when the split fails at once")
        } else {
            #expect(ran == true && calls.count == 2)
            #expect(calls.count == 2 && calls[1].b == UnsafeMutableRawPointer(b.base) + 4 * OneDNNMatmul.splitColumns
                        && calls[1].c == c.base + OneDNNMatmul.splitColumns, "the second product's B and C start past the strip")
            #expect(FewRowsProductTests.relativeError(result, expected) < 1e-5, "columns lost or accumulated twice")
            for i in 0..<key.m { #expect(result[(i * key.ldc + key.n)..<((i + 1) * key.ldc)] == c0[(i * key.ldc + key.n)..<((i + 1) * key.ldc)]) }
        }
    }

    /// A frozen weight's packed copy: where oneDNN packs B in plain rows (its
    /// AVX2 matmul), the forward over it is a plain product and is split too.
    @Test func packedForwardIsSplitWherePackedInPlainRows() throws {
        try #require(OneDNNMatmul.isAvailable, "oneDNN's CPU engine could not be created (libdnnl-dev, scripts/setup.sh)")
        // The forward y = x·Wᵀ of a weight W (n = 256 out, k = 96 in).
        let key = OneDNNMatmul.Key(transA: false, transB: true, m: 67, n: 256, k: 96, lda: 96, ldb: 96, ldc: 256,
                                   alpha: 1, beta: 0, bf16: false, threads: 2)
        var rng = SeededGenerator(seed: 12)
        let a = Aligned((0..<(key.m * key.k)).map { _ in rng.nextUniform() - 0.5 })
        let w = Aligned((0..<(key.n * key.k)).map { _ in rng.nextUniform() - 0.5 })
        let t = MatmulEngineTests.Case(transA: false, transB: true, m: key.m, n: key.n, k: key.k, pad: 0, alpha: 1, beta: 0)
        let expected = MatmulEngineTests.reference(t, a: a.array, lda: key.lda, b: w.array, ldb: key.ldb,
                                                   c: [Float](repeating: 0, count: key.m * key.n), ldc: key.ldc)
        let packed = PackedWeight()
        let c = Aligned([Float](repeating: .nan, count: key.m * key.n))
        _ = OneDNNMatmul.run(key, a: UnsafeMutableRawPointer(a.base), b: UnsafeMutableRawPointer(w.base), c: c.base, packed: packed,
                             splitsColumns: true)
        let before = OneDNNMatmul.executionsOnThisThread
        #expect(OneDNNMatmul.run(key, a: UnsafeMutableRawPointer(a.base), b: UnsafeMutableRawPointer(w.base), c: c.base, packed: packed,
                                 splitsColumns: true))
        let executions = OneDNNMatmul.executionsOnThisThread - before
        #expect(packed.byteCount > 0, "no packed copy was made")
        #expect(FewRowsProductTests.relativeError(c.array, expected) < 1e-5)
        if OneDNNMatmul.hasAVX2Sgemm {
            #expect(executions == 2, "oneDNN's AVX2 matmul packs B in plain rows, so the forward over it should split")
        } else {
            print("note: oneDNN's instruction set here is \(OneDNNMatmul.instructionSet ?? ""): its packed layout may be blocked; \(executions) execution(s)")
        }
    }
}
