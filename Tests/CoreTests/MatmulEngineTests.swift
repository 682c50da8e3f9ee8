// MatmulEngineTests: both engines behind `gemm` compute the same product as a
// plain triple loop, for every transpose, leading dimensions wider than the
// matrix, alpha ≠ 1 and beta ∈ {0, 1}. The goldens run on whichever engine the
// process picked; `FACTSWEEP_MATMUL=openblas|onednn swift test …` runs them on
// the other.
import Foundation
import Testing
import CKernels
@testable import Core
import TestSupport

@Suite struct MatmulEngineTests {
    struct Case: Sendable, CustomStringConvertible {
        var transA: Bool, transB: Bool, m: Int, n: Int, k: Int, pad: Int, alpha: Float, beta: Float
        var description: String { "\(transA ? "T" : "N")\(transB ? "T" : "N") \(m)×\(n)×\(k) pad \(pad) α \(alpha) β \(beta)" }
    }

    static let cases: [Case] = [
        Case(transA: false, transB: true, m: 70, n: 96, k: 64, pad: 0, alpha: 1, beta: 0),
        Case(transA: false, transB: false, m: 7, n: 33, k: 50, pad: 3, alpha: 1, beta: 1),
        Case(transA: true, transB: false, m: 40, n: 24, k: 9, pad: 5, alpha: 0.5, beta: 1),
        Case(transA: true, transB: true, m: 1, n: 65, k: 17, pad: 1, alpha: 2, beta: 0),
    ]

    /// C = alpha·op(A)·op(B) + beta·C by the definition, in Double.
    static func reference(_ t: Case, a: [Float], lda: Int, b: [Float], ldb: Int, c: [Float], ldc: Int) -> [Float] {
        var out = c
        for i in 0..<t.m {
            for j in 0..<t.n {
                var sum = 0.0
                for p in 0..<t.k {
                    let x = t.transA ? a[p * lda + i] : a[i * lda + p]
                    let y = t.transB ? b[j * ldb + p] : b[p * ldb + j]
                    sum += Double(x) * Double(y)
                }
                out[i * ldc + j] = Float(Double(t.alpha) * sum + Double(t.beta) * Double(c[i * ldc + j]))
            }
        }
        return out
    }

    /// Runs `product` on random operands laid out for `t` and returns its C and the reference.
    static func compare(_ t: Case, _ product: (UnsafePointer<Float>, Int, UnsafePointer<Float>, Int, UnsafeMutablePointer<Float>, Int) -> Void)
        -> (got: [Float], expected: [Float])
    {
        let lda = (t.transA ? t.m : t.k) + t.pad, ldb = (t.transB ? t.k : t.n) + t.pad, ldc = t.n + t.pad
        var rng = SeededGenerator(seed: 11)
        let a = (0..<((t.transA ? t.k : t.m) * lda)).map { _ in rng.nextNormal() }
        let b = (0..<((t.transB ? t.n : t.k) * ldb)).map { _ in rng.nextNormal() }
        var c = (0..<(t.m * ldc)).map { _ in rng.nextNormal() }
        let expected = reference(t, a: a, lda: lda, b: b, ldb: ldb, c: c, ldc: ldc)
        product(a, lda, b, ldb, &c, ldc)
        return (c, expected)
    }

    @Test(arguments: cases)
    func oneDNNEqualsDefinition(_ t: Case) throws {
        try #require(OneDNNMatmul.isAvailable, "oneDNN's CPU engine could not be created (libdnnl-dev, scripts/setup.sh)")
        let (got, expected) = Self.compare(t) { a, lda, b, ldb, c, ldc in
            let key = OneDNNMatmul.Key(
                transA: t.transA, transB: t.transB, m: t.m, n: t.n, k: t.k, lda: lda, ldb: ldb, ldc: ldc,
                alpha: t.alpha, beta: t.beta, bf16: false, threads: 2)
            let ran = OneDNNMatmul.run(key, a: UnsafeMutableRawPointer(mutating: a), b: UnsafeMutableRawPointer(mutating: b), c: c)
            #expect(ran, "oneDNN refused \(t)")
        }
        #expect(FewRowsProductTests.relativeError(got, expected) < 1e-5, "\(t)")
    }

    /// A thread keeps one set of memory objects per primitive and points it at
    /// each call's buffers: one shape over three sets of operands, in turn and
    /// again, gives each set its own product (a buffer left from the call
    /// before would give the other set's).
    @Test func onePrimitiveFollowsEachCallsBuffers() throws {
        try #require(OneDNNMatmul.isAvailable, "oneDNN's CPU engine could not be created (libdnnl-dev, scripts/setup.sh)")
        let t = Case(transA: false, transB: true, m: 19, n: 23, k: 29, pad: 2, alpha: 1, beta: 1)
        let lda = t.k + t.pad, ldb = t.k + t.pad, ldc = t.n + t.pad
        let key = OneDNNMatmul.Key(transA: t.transA, transB: t.transB, m: t.m, n: t.n, k: t.k, lda: lda, ldb: ldb, ldc: ldc,
                                   alpha: t.alpha, beta: t.beta, bf16: false, threads: 2)
        var rng = SeededGenerator(seed: 21)
        let sets = (0..<3).map { _ in
            ((0..<(t.m * lda)).map { _ in rng.nextNormal() }, (0..<(t.n * ldb)).map { _ in rng.nextNormal() },
             (0..<(t.m * ldc)).map { _ in rng.nextNormal() })
        }
        // Each set's C lives in a buffer of its own for the whole test, so every operand's address changes between calls.
        let outputs = (0..<3).map { _ in FloatArena(capacity: t.m * ldc) }
        for index in [0, 1, 2, 1, 0, 2] {
            let (a, b, c0) = sets[index]
            let c = outputs[index].base
            c.update(from: c0, count: c0.count)
            // The operands' addresses held for the call (an array's implicit pointer lasts only for the expression it is made in).
            let ran = a.withUnsafeBufferPointer { a in
                b.withUnsafeBufferPointer { b in
                    OneDNNMatmul.run(key, a: UnsafeMutableRawPointer(mutating: a.baseAddress!),
                                     b: UnsafeMutableRawPointer(mutating: b.baseAddress!), c: c, reuse: true)
                }
            }
            #expect(ran)
            let expected = Self.reference(t, a: a, lda: lda, b: b, ldb: ldb, c: c0, ldc: ldc)
            #expect(FewRowsProductTests.relativeError(Array(UnsafeBufferPointer(start: c, count: c0.count)), expected) < 1e-5, "set \(index)")
        }
    }

    @Test(arguments: cases)
    func seamEqualsDefinition(_ t: Case) {
        let (got, expected) = Self.compare(t) { a, lda, b, ldb, c, ldc in
            gemm(transA: t.transA, transB: t.transB, m: t.m, n: t.n, k: t.k, alpha: t.alpha,
                 a: a, lda: lda, b: b, ldb: ldb, beta: t.beta, c: c, ldc: ldc)
        }
        #expect(FewRowsProductTests.relativeError(got, expected) < 1e-5, "\(MatmulEngine.current): \(t)")
    }

    @Test func engineNamesParse() {
        #expect(MatmulEngine(name: "OpenBLAS") == .openBLAS)
        #expect(MatmulEngine(name: "onednn") == .oneDNN)
        #expect(MatmulEngine(name: "mkl") == nil)
    }

    /// The process default is oneDNN when its engine can be created (see
    /// `MatmulEngine.current`) unless the environment forces one; bf16
    /// products are on the same engine, and on bf16 kernels only where
    /// oneDNN has them (AVX-512 CPUs).
    @Test func defaultFollowsTheEnvironment() throws {
        try #require(OneDNNMatmul.isAvailable, "oneDNN's CPU engine could not be created (libdnnl-dev, scripts/setup.sh)")
        let value = ProcessInfo.processInfo.environment[MatmulEngine.environmentKey]?.lowercased()
        let expected: MatmulEngine = value == "openblas" || value == "blas" ? .openBLAS : .oneDNN
        #expect(MatmulEngine.current == expected, "\(MatmulEngine.environmentKey)=\(value ?? "unset")")
        #expect(MatmulEngine.currentBF16 == expected)
        // bf16 kernels: oneDNN 2.6 has them on AVX-512 CPUs.
        let kernels = MatmulEngine.currentBF16 == .oneDNN && CPUFeatures.hasAVX512
        #expect(MatmulEngine.hasBF16Kernels == kernels, "\(CPUFeatures.modelName)")
        #expect((MatmulEngine.bf16Notice == nil) == kernels)
    }

    /// `FACTSWEEP_MAX_CPU_ISA=avx2` (scripts/test.sh's second pass) holds the
    /// kernels and oneDNN to what an AVX2 host runs: else that pass would
    /// run the AVX-512 code a second time and test nothing new.
    @Test func theAVX2PassRunsAnAVX2HostsCode() throws {
        try #require(OneDNNMatmul.isAvailable, "oneDNN's CPU engine could not be created (libdnnl-dev, scripts/setup.sh)")
        #expect((factsweep_cpu_has_avx512() != 0) == CPUFeatures.hasAVX512, "\(CPUFeatures.modelName)")
        #expect((factsweep_cpu_has_avx512bf16() != 0) == CPUFeatures.hasAVX512BF16, "\(CPUFeatures.modelName)")
        #expect(factsweep_widest_isa() == (CPUFeatures.hasAVX512 ? 2 : CPUFeatures.hasAVX2 ? 1 : 0), "\(CPUFeatures.modelName)")
        guard CPUFeatures.heldToAVX2 else { return }
        #expect(factsweep_cpu_has_avx2() != 0 && !MatmulEngine.hasBF16Kernels)
        #expect(OneDNNMatmul.instructionSet == "avx2" && OneDNNMatmul.hasAVX2Sgemm && !OneDNNMatmul.makesBlockedF32Copies)
        #expect(factsweep_widest_isa() == 1, "widest.h's kernels should run their AVX2 builds (1), not \(factsweep_widest_isa())")
        // scripts/test.sh sets OPENBLAS_CORETYPE=Haswell (OpenBLAS reads it when loaded); `factsweep` sets it
        // itself from `recommended` and re-executes.
        if ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"] != nil {
            #expect(OpenBLASCore.name.lowercased() == "haswell", "\(OpenBLASCore.name)")
        } else {
            #expect(OpenBLASCore.recommended == "Haswell", "\(OpenBLASCore.name)")
            print("note: OPENBLAS_CORETYPE is unset: OpenBLAS runs \(OpenBLASCore.name)'s kernels in this process")
        }
        #expect(OpenBLASCore.replacement(for: "SkylakeX", avx512: factsweep_cpu_has_avx512() != 0, avx2: true) == "Haswell")
    }

    /// A training-sized product (one example's rows × SmolLM2's MLP) on random operands.
    static func trainingProduct(seed: UInt64) -> (a: [Float], b: [Float], m: Int, n: Int, k: Int) {
        let m = 70, n = 1536, k = 576
        var rng = SeededGenerator(seed: seed)
        return ((0..<(m * k)).map { _ in rng.nextNormal() }, (0..<(n * k)).map { _ in rng.nextNormal() }, m, n, k)
    }

    /// Products on oneDNN outside a section, on OpenBLAS inside one, and the
    /// section is the calling thread's: another thread's open section does
    /// not move this thread's products to OpenBLAS (it did when the state
    /// was the process's, and trials side by side then computed other bits
    /// than alone), and a parallel loop's workers inherit their caller's.
    @Test func aSectionIsItsThreadsOwn() throws {
        try #require(OneDNNMatmul.isAvailable, "oneDNN's CPU engine could not be created (libdnnl-dev, scripts/setup.sh)")
        let (a, b, m, n, k) = Self.trainingProduct(seed: 5)
        func product(_ engine: MatmulEngine) -> [Float] {
            var c = [Float](repeating: 0, count: m * n)
            gemm(transA: false, transB: true, m: m, n: n, k: k, a: a, lda: k, b: b, ldb: k, beta: 0, c: &c, ldc: n, engine: engine)
            return c
        }
        let alone = product(.oneDNN)
        // Single-threaded OpenBLAS: its sums, like oneDNN's, depend on the threads that run them.
        var openBLAS = [Float](repeating: 0, count: m * n)
        BLASThreads.singleThreaded {
            sgemm(transA: false, transB: true, m: m, n: n, k: k, alpha: 1, a: a, lda: k, b: b, ldb: k, beta: 0, c: &openBLAS, ldc: n)
        }
        try #require(alone != openBLAS, "the two engines' sums must differ somewhere for this test to tell them apart")

        // Another thread holds a section open while this one multiplies.
        let opened = DispatchSemaphore(value: 0), release = DispatchSemaphore(value: 0), closed = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            BLASThreads.singleThreaded {
                opened.signal()
                release.wait()
            }
            closed.signal()
        }
        opened.wait()
        let besideASection = product(.oneDNN)
        var inOwnSection: [Float] = []
        BLASThreads.singleThreaded { inOwnSection = product(.oneDNN) }
        release.signal()
        closed.wait()
        #expect(besideASection == alone, "another thread's section changed this thread's product")
        #expect(inOwnSection == openBLAS, "inside a section the product runs on single-threaded OpenBLAS")

        // A parallel loop's workers multiply as their caller does.
        let results = LockedValue<[Int: [Float]]>([:])
        ComputeContext(threads: 2).withSingleThreadedBLAS {
            ComputeContext(threads: 2).parallelChunks(2) { chunk, _ in
                let c = product(.oneDNN)
                results.withLock { $0[chunk] = c }
            }
        }
        #expect(results.withLock { $0.count } == 2)
        for (chunk, c) in results.withLock({ $0 }) {
            #expect(c == openBLAS, "worker \(chunk) of a loop inside a section ran on oneDNN")
        }
    }
}
