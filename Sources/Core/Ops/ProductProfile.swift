// ProductProfile: the wall time of every product `gemm` runs outside
// single-threaded sections (and of one thread's share of each product
// that threads run on their own rows, `gemmOnOneThread`), per shape,
// collected only while a benchmark asks,
// and the rate the same product reaches alone — so that a training run can
// print each product's GFLOP/s against its engine's own peak for that shape.
import Dispatch
import Foundation

/// Per-shape product timings of the training loop, against each shape's rate alone.
public enum ProductProfile {
    /// What a product's rate depends on: its shape and layout, and its operands' types.
    public struct Shape: Hashable, Sendable, CustomStringConvertible {
        public var transA: Bool, transB: Bool
        public var m: Int, n: Int, k: Int
        /// Products in bf16 (operands rounded to bf16, f32 accumulation).
        public var bf16: Bool
        /// B already held in bf16 (a frozen base in bf16 storage).
        public var bStoredBF16: Bool
        /// B is a matrix whose packed copy the engine keeps (see `PackedWeight`).
        public var bPacked: Bool
        /// B's bf16 values already held in Float32 (QLoRA's base dequantised
        /// for a CPU without bf16 kernels: `ProductOperand.bf16Floats`).
        public var bHeldInFloats = false
        /// One thread's share of a product that each thread runs on its own
        /// rows or panels (`gemmOnOneThread`, `gemmBFloat16PerThreadIntoPanels`:
        /// QLoRA's products at SmolLM2), on one
        /// thread; its rate alone is measured on one thread too, with
        /// contiguous operands (training's share writes or reads a slice of
        /// a wider matrix).
        public var onOneThread = false
        /// B was written into scratch just before the product (QLoRA's NF4
        /// base dequantised into the packed layout): hot in cache, so it has
        /// no rate with B streamed from memory.
        public var bInScratch = false

        public var description: String {
            let b = bStoredBF16 ? " bf16(B bf16)" : bHeldInFloats ? " bf16(B bf16 in f32)" : " bf16"
            return "\(m)×\(k)×\(n) \(transA ? "T" : "N")\(transB ? "T" : "N")\(bf16 ? b : " f32")\(bPacked ? " packed" : "")"
                + (onOneThread ? " one thread" : "") + (bInScratch ? " B in scratch" : "")
        }

        /// 2·m·n·k.
        public var flops: Double { 2 * Double(m) * Double(n) * Double(k) }
    }

    /// One shape's products during the profiled span.
    public struct Entry: Sendable {
        public var shape: Shape
        public var calls: Int
        public var seconds: Double
        /// GFLOP/s over the span's calls.
        public var gflops: Double { shape.flops * Double(calls) / seconds / 1e9 }
    }

    private struct Totals { var calls = 0, nanoseconds: UInt64 = 0 }

    private static let totals = LockedValue<[Shape: Totals]?>(nil)

    /// Whether products are being timed (checked on every product; a plain
    /// load is enough: it changes only between a benchmark's epochs).
    nonisolated(unsafe) private static var enabled = false

    /// Starts timing products (dropping any earlier timings).
    public static func start() {
        totals.withLock { $0 = [:] }
        enabled = true
    }

    /// Stops timing and returns each shape's timings, the most time first.
    public static func stop() -> [Entry] {
        enabled = false
        let collected = totals.withLock { value -> [Shape: Totals] in
            defer { value = nil }
            return value ?? [:]
        }
        return collected.map { Entry(shape: $0.key, calls: $0.value.calls, seconds: Double($0.value.nanoseconds) * 1e-9) }
            .sorted { $0.seconds > $1.seconds }
    }

    /// Runs `body` (one product of `shape`), timing it while profiling.
    @inline(__always)
    static func timed(_ shape: @autoclosure () -> Shape, _ body: () -> Void) {
        guard enabled else { return body() }
        let start = DispatchTime.now().uptimeNanoseconds
        body()
        let elapsed = DispatchTime.now().uptimeNanoseconds - start
        let key = shape()
        totals.withLock { value in
            guard value != nil else { return }
            value?[key, default: Totals()].calls += 1
            value?[key, default: Totals()].nanoseconds += elapsed
        }
    }

    /// Seconds that timing one product adds to a profiled epoch beyond the
    /// product itself (two clock reads and a locked update of its shape's
    /// totals), measured over `calls` empty products of a training shape:
    /// with the calls an epoch times, the profile's own share of the epochs
    /// a benchmark reports. Drops any timings, so it runs after `stop`.
    public static func costPerCall(calls: Int = 200_000) -> Double {
        let shape = Shape(transA: false, transB: true, m: 62, n: 1536, k: 576, bf16: false, bStoredBF16: false, bPacked: true)
        start()
        let begin = DispatchTime.now().uptimeNanoseconds
        for _ in 0..<calls { timed(shape) {} }
        let elapsed = DispatchTime.now().uptimeNanoseconds - begin
        _ = stop()
        return Double(elapsed) * 1e-9 / Double(max(1, calls))
    }

    /// Best GFLOP/s of `shape`'s product alone on fresh operands, through the
    /// same path training takes (bf16 conversion of Float32 operands
    /// included), on the threads the process's products use now.
    public static func isolatedRate(_ shape: Shape, repeats: Int = 12) -> Double {
        measure(shape, copies: 1, rounds: repeats).rate
    }

    /// Bytes of B copies `streamedRate` cycles through: four times the
    /// largest last-level cache of the machines measured (32 MiB).
    public static let streamedPoolBytes = 128 << 20

    /// Best GFLOP/s of `shape`'s product when every call reads a B no other
    /// call has read lately (copies cycled through a pool larger than the
    /// last-level cache), A and C staying hot: as training reads a frozen
    /// base once per direction per step, from memory. Only for a frozen base:
    /// one stored in bf16 (`bStoredBF16`) or read from its packed copy
    /// (`bPacked`: the adapters' bases in f32 and in bf16, the head), each
    /// copy of B then packed apart. Other Bs are activations and gradients,
    /// hot in cache when training reads them, or full fine-tuning's f32
    /// trained matrices, which at SmolLM2's size come from memory too but are
    /// not measured so: their shapes carry no flag saying B is a weight, so
    /// only their rate alone, with B hot, stands beside them. nil too for
    /// a B over half the pool (the 1B head): one copy alone is past the
    /// cache, so its rate alone already reads it from memory.
    public static func streamedRate(_ shape: Shape, sweeps: Int = 4) -> Double? {
        streamed(shape, sweeps: sweeps)?.rate
    }

    /// `streamedRate`'s measurement, with how many distinct packed copies of
    /// B it read (tests: every copy packed apart, none read in place).
    static func streamed(_ shape: Shape, sweeps: Int = 4) -> (rate: Double, packedCopies: Int)? {
        // B's bytes as the product reads them: bf16 bits, or a packed copy in the product's precision.
        let bBytes = (shape.bf16 ? 2 : 4) * shape.k * shape.n
        guard shape.bStoredBF16 || shape.bPacked, !shape.bInScratch, bBytes > 0, 2 * bBytes <= streamedPoolBytes else { return nil }
        return measure(shape, copies: streamedPoolBytes / bBytes, rounds: sweeps)
    }

    /// Best GFLOP/s over `rounds` rounds of one product per copy of B, all
    /// copies holding the same values: one copy measures the product with its
    /// operands hot in cache, many (frozen Bs only: bf16-stored or packed,
    /// each copy with its own packed copy, made in an untimed round first)
    /// with B read from memory. A and C are the same in every call. Also
    /// returns how many distinct packed copies the products read.
    private static func measure(_ shape: Shape, copies: Int, rounds: Int) -> (rate: Double, packedCopies: Int) {
        precondition(copies == 1 || shape.bStoredBF16 || shape.bPacked, "copies of B are bf16-stored or packed copies")
        let aCount = shape.m * shape.k, bCount = shape.k * shape.n
        let arena = FloatArena(capacity: aCount + bCount + shape.m * shape.n)
        var rng = SeededGenerator(seed: 5)
        for i in 0..<(aCount + bCount) { arena.base[i] = rng.nextUniform() - 0.5 }
        let a = arena.base, b = arena.base + aCount, c = arena.base + aCount + bCount
        if shape.bHeldInFloats { for i in 0..<bCount { b[i] = roundedToBFloat16(b[i]) } }
        let bOperand: ProductOperand = shape.bHeldInFloats ? .bf16Floats(b) : .f32(b)
        let lda = shape.transA ? shape.m : shape.k, ldb = shape.transB ? shape.k : shape.n
        let bRows = shape.transB ? shape.n : shape.k, bColumns = shape.transB ? shape.k : shape.n
        // Packed copies are packed from one source each; plain bf16 copies are read themselves.
        let packed = shape.bPacked ? (0..<copies).map { _ in PackedWeight() } : []
        let sources = shape.bStoredBF16 ? (packed.isEmpty ? copies : 1) : 0
        let bits = (0..<sources).map { _ in BFloat16Matrix(b, rows: bRows, columns: bColumns, context: ComputeContext(threads: 1)) }
        func sweep() {
            for copy in 0..<copies {
                let pack = packed.isEmpty ? nil : packed[copy]
                if shape.bf16 {
                    func product() {
                        gemmBFloat16(transA: shape.transA, transB: shape.transB, m: shape.m, n: shape.n, k: shape.k,
                                     a: .f32(a), lda: lda, b: bits.isEmpty ? bOperand : .bf16(bits[min(copy, bits.count - 1)].base),
                                     ldb: ldb, beta: 0, c: c, ldc: shape.n, packed: pack)
                    }
                    // A one-thread share (QLoRA's bf16 products at SmolLM2) alone on one thread.
                    if shape.onOneThread { BLASThreads.singleThreaded(product) } else { product() }
                } else if shape.onOneThread {
                    BLASThreads.singleThreaded {
                        gemmOnOneThread(transA: shape.transA, transB: shape.transB, m: shape.m, n: shape.n, k: shape.k,
                                        a: a, lda: lda, b: b, ldb: ldb, beta: 0, c: c, ldc: shape.n)
                    }
                } else {
                    gemm(transA: shape.transA, transB: shape.transB, m: shape.m, n: shape.n, k: shape.k,
                         a: a, lda: lda, b: b, ldb: ldb, beta: 0, c: c, ldc: shape.n, packed: pack)
                }
            }
        }
        if !packed.isEmpty { sweep() }  // packs every copy, untimed
        var best = Double.infinity
        for _ in 0..<rounds {
            let start = DispatchTime.now().uptimeNanoseconds
            sweep()
            best = min(best, Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9)
        }
        return (shape.flops * Double(copies) / best / 1e9, packed.filter { $0.byteCount > 0 }.count)
    }
}
