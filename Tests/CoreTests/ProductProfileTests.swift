// ProductProfile: products timed per shape while a benchmark profiles, and a
// shape's rate alone with B hot in cache or streamed from memory.
import Foundation
import Testing
@testable import Core

/// Serialized: the profile is one per process, and three of these tests start and stop it.
@Suite(.serialized) struct ProductProfileTests {
    /// Products run while profiling are counted under their shape; none are
    /// counted once profiling stops.
    @Test func profiledProductsAreCountedPerShape() {
        let (m, k, n) = (5, 7, 11)
        let arena = FloatArena(capacity: m * k + k * n + m * n)
        for i in 0..<(m * k + k * n) { arena.base[i] = Float(i % 13) / 13 }
        let a = arena.base, b = arena.base + m * k, c = arena.base + m * k + k * n
        func product() {
            gemm(transA: false, transB: false, m: m, n: n, k: k, a: a, lda: k, b: b, ldb: n, beta: 0, c: c, ldc: n, packed: nil)
        }
        ProductProfile.start()
        for _ in 0..<3 { product() }
        let entries = ProductProfile.stop()
        let ours = entries.filter { $0.shape.m == m && $0.shape.n == n && $0.shape.k == k && !$0.shape.bf16 }
        #expect(ours.count == 1 && ours.first?.calls == 3, "\(entries.map { "\($0.shape) × \($0.calls)" })")
        #expect(ours.allSatisfy { $0.seconds > 0 && $0.gflops.isFinite })
        product()
        #expect(ProductProfile.stop().isEmpty)
    }

    /// The cost of timing one product is measured on empty products, small
    /// and positive, and leaves the profile off and empty.
    @Test func aTimedProductsCostIsMeasured() {
        let cost = ProductProfile.costPerCall(calls: 20_000)
        #expect(cost > 0 && cost < 1e-4, "\(cost) s a call")
        #expect(ProductProfile.stop().isEmpty)
    }

    /// The rate alone is measured for f32 and bf16 shapes; the rate with B
    /// streamed only for a frozen base, in bf16 storage or packed (other Bs
    /// are hot in cache when training reads them), not larger than half the
    /// pool.
    @Test func ratesAloneAndStreamed() {
        for (bf16, stored) in [(false, false), (true, false), (true, true)] {
            let shape = ProductProfile.Shape(transA: false, transB: true, m: 16, n: 96, k: 64, bf16: bf16, bStoredBF16: stored, bPacked: false)
            let alone = ProductProfile.isolatedRate(shape)
            #expect(alone.isFinite && alone > 0, "\(shape): alone \(alone)")
            let streamed = ProductProfile.streamedRate(shape, sweeps: 1)
            if stored {
                #expect(streamed.map { $0.isFinite && $0 > 0 } == true, "\(shape): streamed \(String(describing: streamed))")
            } else {
                #expect(streamed == nil, "\(shape)")
            }
        }
        var held = ProductProfile.Shape(transA: false, transB: true, m: 16, n: 96, k: 64, bf16: true, bStoredBF16: false, bPacked: false)
        held.bHeldInFloats = true
        #expect(ProductProfile.isolatedRate(held).isFinite && ProductProfile.streamedRate(held) == nil)
        #expect(held.description.contains("B bf16 in f32"), "\(held)")
        let stored = ProductProfile.Shape(transA: true, transB: false, m: 8, n: 128, k: 32, bf16: true, bStoredBF16: true, bPacked: false)
        #expect(ProductProfile.streamedRate(stored, sweeps: 1).map { $0.isFinite && $0 > 0 } == true)
        // A frozen base read from its packed copy (the adapters' bases, the head), bf16 or f32: every copy
        // of the pool packed apart, so that each product reads B from memory, not one copy from cache.
        var packed = stored
        packed.bPacked = true
        let packedF32 = ProductProfile.Shape(transA: false, transB: true, m: 16, n: 256, k: 256, bf16: false, bStoredBF16: false, bPacked: true)
        // Without bf16 kernels (oneDNN's AVX2 matmul) no bf16 copy is made: the products multiply in f32.
        for (shape, bytes, copies) in [(packed, 2 * packed.k * packed.n, MatmulEngine.hasBF16Kernels),
                                       (packedF32, 4 * packedF32.k * packedF32.n, true)] {
            let measured = ProductProfile.streamed(shape, sweeps: 2)
            #expect(measured.map { $0.rate.isFinite && $0.rate > 0 } == true, "\(shape)")
            #expect(measured?.packedCopies == (copies ? ProductProfile.streamedPoolBytes / bytes : 0), "\(shape): \(String(describing: measured))")
        }
        // B dequantised into scratch just before the product (QLoRA) is hot in cache: no streamed rate.
        var scratch = packed
        scratch.bInScratch = true
        #expect(ProductProfile.streamedRate(scratch) == nil && scratch.description.hasSuffix("B in scratch"))
        let pastThePool = ProductProfile.Shape(transA: false, transB: true, m: 1, n: 65536, k: 1024, bf16: true, bStoredBF16: true, bPacked: false)
        #expect(2 * 2 * pastThePool.n * pastThePool.k > ProductProfile.streamedPoolBytes && ProductProfile.streamedRate(pastThePool) == nil)
    }

    /// The profile's entry for a per-thread bf16 product is the widest
    /// thread's share: with 9 panels on two threads (576 columns, as q and o
    /// at SmolLM2), 5 panels (320 columns), not the first thread's 4, so
    /// that it times the share the region waits for.
    @Test func theProfileTimesTheWidestShare() throws {
        try #require(MatmulEngine.hasBF16Kernels, "needs oneDNN's bf16 kernels (AVX512_BF16), which every machine of this project has")
        try #require(FrozenMatrix.perThread.byEnvironment && FrozenMatrix.blocked.byEnvironment,
                     "\(FrozenMatrix.perThread.environmentKey) or \(FrozenMatrix.blocked.environmentKey)=off turns off what this test checks")
        let context = ComputeContext(threads: 2)
        let (outDim, inDim, rows) = (576, 128, 61)
        let t = try NF4ProductTests.tensor(rows: outDim, columns: inDim, seed: 32, context: context)
        let matrix = FrozenMatrix.nf4(t)
        let buffers = NF4ProductTests.Buffers(matrix, rows: rows, threads: 2, x: FewRowsProductTests.random(rows * inDim, seed: 33),
                              dy: FewRowsProductTests.random(rows * outDim, seed: 34), start: FewRowsProductTests.random(rows * inDim, seed: 35))
        let before = ProductScratch.current.perThreadProducts
        ProductProfile.start()
        ProductPrecision.run(.bf16) {
            matrix.multiply(out: buffers.out, inp: buffers.inp, n: rows, tiles: buffers.tiles, context: context)
        }
        let entries = ProductProfile.stop().filter { $0.shape.onOneThread && $0.shape.m == rows && $0.shape.k == inDim }
        #expect(ProductScratch.current.perThreadProducts - before == 1)
        #expect(entries.map(\.shape.n) == [320] && entries.first?.calls == 1, "\(entries.map { "\($0.shape) × \($0.calls)" })")
    }
}
