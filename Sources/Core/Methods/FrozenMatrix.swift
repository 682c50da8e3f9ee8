// FrozenMatrix: a projection's base matrix W (out, in) in the storage its
// method uses — Float32, bf16 (adapter methods in bf16 precision), or NF4
// dequantised on the fly (QLoRA) — with the two products every method needs.

import Foundation

/// A base weight matrix, read-only during training except under full
/// fine-tuning (whose optimizer updates the Float32 storage in place).
public enum FrozenMatrix: Sendable {
    /// Row-major Float32 (out, in); `packed` holds its oneDNN-packed copies
    /// when it has any: the frozen base of an adapter method in f32 (see
    /// `LlamaModel.packsFrozenBases`).
    case dense(FloatPointer, outDim: Int, inDim: Int, packed: PackedWeight? = nil)
    /// NF4 (QLoRA), dequantised into scratch for each product: whole, in the
    /// product's precision, for training's many rows (at SmolLM2's sizes on
    /// several threads, each thread its own part: `multiplyPerThread` in f32,
    /// `multiplyPerThreadBlocked` in bf16); `tileRows` rows per thread for
    /// decoding's few.
    case nf4(NF4Tensor)
    /// Row-major bf16 (out, in): the frozen base of an adapter method in bf16
    /// precision, converted once, or the rounding of a weight full fine-tuning
    /// trains in bf16, made again after each step; its products take it as it is.
    case bf16(BFloat16Matrix)

    public var outDim: Int { switch self { case let .dense(_, o, _, _): o; case let .nf4(t): t.rows; case let .bf16(m): m.rows } }
    public var inDim: Int { switch self { case let .dense(_, _, i, _): i; case let .nf4(t): t.columns; case let .bf16(m): m.columns } }

    /// Rows per dequantised tile when decoding: about 1 MB of Floats, so a
    /// tile stays in L2 between its dequantisation and its product.
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
        case let .dense(w, o, i, packed):
            FrozenMatrix.withPlainRows(packed, oneOff: true) {
                if w.base != destination.base { destination.base.update(from: w.base, count: o * i) }
            }
        case let .nf4(t):
            t.dequantizeRows(0..<t.rows, into: destination.base)
        case let .bf16(m):
            m.widen(into: destination.base)
        }
    }

    /// Runs `body`, which reads a dense matrix's plain rows, under a lease
    /// on them when its packed copies may release them (written back first
    /// if released, and let go again afterwards if both copies are then
    /// current: `ReleasablePlainRows.withRows`).
    private static func withPlainRows(_ packed: PackedWeight?, oneOff: Bool = false, _ body: () -> Void) {
        guard let packed else { return body() }
        packed.withPlainRows(oneOff: oneOff, body)
    }

    /// `body`'s result over a dense matrix's plain Float32 rows (under a
    /// lease on them, as `withPlainRows`), or nil for another storage.
    func withDenseRows<Result>(_ body: (UnsafePointer<Float>) -> Result) -> Result? {
        guard case let .dense(w, _, _, packed) = self else { return nil }
        var result: Result?
        FrozenMatrix.withPlainRows(packed) { result = body(UnsafePointer(w.base)) }
        return result
    }

    /// Floats of scratch the products need for dequantised weights: the whole
    /// matrix (training's products), or one tile per thread (decoding's,
    /// which give each thread its own rows), whichever is larger.
    func tileFloats(threads: Int) -> Int {
        switch self {
        case .dense, .bf16: 0
        case let .nf4(t): max(t.count, FrozenMatrix.tileRows(columns: t.columns) * t.columns * max(1, threads))
        }
    }

    /// Dequantises all of `t` into `scratch` in this thread's product
    /// precision and runs `product` with it as B: bf16 bits (half the bytes
    /// written and read), bf16 values in Float32 (bf16 without bf16 kernels,
    /// whose products multiply in f32: no widening per product) or Float32.
    ///
    /// Why whole: with many rows the products are compute-bound, and one
    /// product over the whole matrix runs at the dense rate, where products
    /// over 128-row tiles ran at 45% of it in f32 and at 14 GFLOP/s in bf16
    /// (Llama-3.2-1B's shapes, docs/benchmarks.md). The cost is one matrix of
    /// scratch, shared by all projections (67 MB at 1B's MLP).
    private static func withDequantized(
        _ t: NF4Tensor, scratch: FloatPointer, context: ComputeContext, _ product: (ProductOperand) -> Void
    ) {
        if ProductPrecision.current == .bf16, !ProductPrecision.usesBF16Kernels {
            t.dequantizeRowsBFloat16Floats(0..<t.rows, into: scratch.base, context: context)
            product(.bf16Floats(UnsafePointer(scratch.base)))
        } else if ProductPrecision.current == .bf16 {
            // An even count of UInt16 fills whole Floats, as rebinding asks.
            scratch.base.withMemoryRebound(to: UInt16.self, capacity: 2 * ((t.count + 1) / 2)) { bits in
                t.dequantizeRowsBFloat16(0..<t.rows, into: bits, context: context)
                product(.bf16(UnsafePointer(bits)))
            }
        } else {
            t.dequantizeRows(0..<t.rows, into: scratch.base, context: context)
            product(.f32(UnsafePointer(scratch.base)))
        }
    }

    /// `multiplyBlocked`'s switch: `FACTSWEEP_NF4_BLOCKED=off` for the
    /// benchmark's before/after; tests turn it off per thread to compare
    /// with plain rows, as before it.
    static let blocked = PathSwitch(environmentKey: "FACTSWEEP_NF4_BLOCKED")

    /// A bf16 product over an NF4 base (forward X · Wᵀ, or backward dY · W)
    /// with W dequantised straight into the layout oneDNN's bf16 kernels read
    /// a packed B in. Plain bf16 rows cost oneDNN a re-blocking copy inside
    /// every call; at batch 1's 62 rows that made the products 13–15% slower
    /// than over a packed B (docs/benchmarks.md). The values are the plain
    /// path's; only where they are written differs. False when this path does
    /// not apply (f32, no bf16 kernels, sizes not multiples of 64, another
    /// layout): the caller dequantises plain rows.
    private static func multiplyBlocked(
        _ t: NF4Tensor, forward: Bool, m: Int, a: UnsafePointer<Float>, beta: Float, c: UnsafeMutablePointer<Float>,
        scratch: FloatPointer, context: ComputeContext
    ) -> Bool {
        guard ProductPrecision.current == .bf16, blocked.isOn, t.fitsBlockedLayout else { return false }
        let (n, k) = forward ? (t.rows, t.columns) : (t.columns, t.rows)
        // An even count of UInt16 fills whole Floats, as rebinding asks.
        return scratch.base.withMemoryRebound(to: UInt16.self, capacity: 2 * ((t.count + 1) / 2)) { bits in
            gemmBFloat16IntoBlockedB(transB: forward, m: m, n: n, k: k, a: a, lda: k, beta: beta, c: c, ldc: n, b: bits) {
                t.dequantizeRowsBFloat16Blocked(transposed: forward, into: bits, context: context)
            }
        }
    }

    /// Where an f32 product over an NF4 base runs as one product per thread
    /// (`multiplyPerThread`): up to this many rows (batch 8 at SmolLM2 is
    /// ~380), over matrices of at most `perThreadMatrixBytes` as Floats.
    static let perThreadRowLimit = 512

    /// 3.5 MiB: SmolLM2's largest projection is 3.4 MiB as Floats, where the
    /// per-thread products were faster at batches 1, 2 and 4 and level at 8;
    /// at Llama-3.2-1B, whose projections are 4–64 MiB, past every cache,
    /// they made a batch-1 epoch 6% slower (docs/benchmarks.md, "Issue 13,
    /// twenty-fifth stop"), so none of them takes the path.
    static let perThreadMatrixBytes = 7 << 19

    /// `multiplyPerThread`'s switch: `FACTSWEEP_NF4_PER_THREAD=off` for the
    /// benchmark's before/after; tests turn it off per thread to compare
    /// with the one product over the whole matrix, as before it.
    static let perThread = PathSwitch(environmentKey: "FACTSWEEP_NF4_PER_THREAD")

    /// An f32 product over an NF4 base (forward X · Wᵀ, or backward dY · W) of
    /// up to `perThreadRowLimit` rows, as one product per thread: thread t dequantises its
    /// share of W's rows and multiplies them on its own (oneDNN's primitive
    /// for one thread), so the Floats it wrote are read by the core that wrote
    /// them. Forward, a thread's rows of W are its columns of the output;
    /// backward, they are its part of the sum over W's rows, so each chunk
    /// other than the first writes a partial sum that is added after (the
    /// sum's order differs from one product's: within 1e-6).
    ///
    /// Why: with the whole matrix dequantised on both threads and multiplied
    /// by both, the dequantisation of SmolLM2's QLoRA step took 0.15 s an
    /// epoch at best and 0.6–0.9 s in some processes, where one thread alone
    /// in a one-thread process took 0.09 s; the products themselves changed
    /// by 40% at most. This way batch-1 epochs took 1.05–1.13 s against
    /// 1.16–1.83 s (three pairs), 1.13 against 1.165 s on the medians of
    /// eight pairs in the bench (docs/benchmarks.md, "Issue 13, twenty-fifth stop").
    /// False when this path does not apply (bf16, one thread, more rows than
    /// `perThreadRowLimit`, a matrix over `perThreadMatrixBytes`, fewer rows
    /// of W than threads).
    private static func multiplyPerThread(
        _ t: NF4Tensor, forward: Bool, m: Int, a: UnsafePointer<Float>, beta: Float, c: UnsafeMutablePointer<Float>,
        scratch: FloatPointer, context: ComputeContext
    ) -> Bool {
        let threads = context.threads
        guard ProductPrecision.current == .f32, perThread.isOn, threads > 1, m > 0,
              m <= perThreadRowLimit, 4 * t.count <= perThreadMatrixBytes, t.rows >= threads else { return false }
        let (n, k) = forward ? (t.rows, t.columns) : (t.columns, t.rows)
        // Chunk i > 0 of the backward sums into its own slice of the calling
        // thread's scratch: a team with fewer threads than chunks runs
        // several chunks on one thread (`factsweep_team_run`).
        let partialCount = forward ? 0 : (threads - 1) * m * n
        let partials = ProductScratch.current.buffer(3, bytes: 4 * max(1, partialCount))
            .bindMemory(to: Float.self, capacity: max(1, partialCount))
        let shared = UncheckedSendable((a: a, c: c, tiles: scratch.base, partials: partials))
        context.withSingleThreadedBLAS {
            context.parallelChunks(threads) { chunk, _ in
                let r0 = t.rows * chunk / threads, r1 = t.rows * (chunk + 1) / threads
                let tile = shared.value.tiles + r0 * t.columns
                t.dequantizeRows(r0..<r1, into: tile)
                // The profile times the last chunk's product, the widest when W's rows split unevenly.
                if forward {
                    // Output columns r0..<r1 = X · W[r0..<r1]ᵀ.
                    gemmOnOneThread(transA: false, transB: true, m: m, n: r1 - r0, k: k, a: shared.value.a, lda: k,
                                    b: tile, ldb: k, beta: beta, c: shared.value.c + r0, ldc: n, profiled: chunk == threads - 1)
                } else {
                    // dY[:, r0..<r1] · W[r0..<r1], into C (the first chunk) or a partial sum.
                    let out = chunk == 0 ? shared.value.c : shared.value.partials + (chunk - 1) * m * n
                    gemmOnOneThread(transA: false, transB: false, m: m, n: n, k: r1 - r0, a: shared.value.a + r0, lda: k,
                                    b: tile, ldb: n, beta: chunk == 0 ? beta : 0, c: out, ldc: n, profiled: chunk == threads - 1)
                }
            }
        }
        if !forward {
            for chunk in 1..<threads { add(FloatPointer(c), FloatPointer(partials + (chunk - 1) * m * n), count: m * n, context: context) }
        }
        ProductScratch.current.perThreadProducts += 1
        return true
    }

    /// Where a bf16 product over an NF4 base runs as one product per thread
    /// (`multiplyPerThreadBlocked`): batch 1's rows (58–70 at SmolLM2).
    /// Alternated runs of QLoRA in bf16 (docs/benchmarks.md, "Issue 13,
    /// thirtieth stop"): at batch 1 about 1% slower in most processes and
    /// 17–20% faster in those where the shared product ran slow; at batch 8
    /// (253 rows) 7–19% slower in every pair.
    static let perThreadBlockedRowLimit = 96

    /// A bf16 product over an NF4 base (forward X · Wᵀ, or backward dY · W)
    /// of up to `perThreadBlockedRowLimit` rows, as one product per thread over
    /// the output columns it dequantised (`gemmBFloat16PerThreadIntoPanels`):
    /// forward, thread t's rows of W; backward, its columns of W over all
    /// rows. Each output column is still one whole sum, so the values are
    /// `multiplyBlocked`'s to within the kernels' blocking of the sum.
    ///
    /// Why: as in f32 (`multiplyPerThread`), where the whole matrix
    /// dequantised on both threads and multiplied by both ran several times
    /// slower in some processes (QLoRA's bf16 batch-1 epochs took 0.64 s in
    /// most processes and 1.16 s in some, docs/benchmarks.md, "Issue 13,
    /// twenty-ninth stop"), the bf16 values a thread writes are read by the
    /// core that wrote them, with no barrier between. False when this path
    /// does not apply (f32, no bf16 kernels, one thread, more rows than
    /// `perThreadBlockedRowLimit`, a matrix over `perThreadMatrixBytes` as Floats,
    /// sizes not multiples of 64, fewer than two panels of output a thread);
    /// the caller takes `multiplyBlocked`.
    private static func multiplyPerThreadBlocked(
        _ t: NF4Tensor, forward: Bool, m: Int, a: UnsafePointer<Float>, beta: Float, c: UnsafeMutablePointer<Float>,
        scratch: FloatPointer, context: ComputeContext
    ) -> Bool {
        guard ProductPrecision.current == .bf16, ProductPrecision.usesBF16Kernels, perThread.isOn, blocked.isOn, m > 0,
              m <= perThreadBlockedRowLimit, 4 * t.count <= perThreadMatrixBytes, t.fitsBlockedLayout else { return false }
        let (n, k) = forward ? (t.rows, t.columns) : (t.columns, t.rows)
        // An even count of UInt16 fills whole Floats, as rebinding asks.
        return scratch.base.withMemoryRebound(to: UInt16.self, capacity: 2 * ((t.count + 1) / 2)) { bits in
            gemmBFloat16PerThreadIntoPanels(
                transB: forward, m: m, n: n, k: k, a: a, beta: beta, c: c, b: bits, context: context,
                fill: { t.dequantizeBFloat16Panels(transposed: forward, $0, into: bits) },
                fallback: { multiplyPanelsPlain(t, forward: forward, $0, m: m, a: a, beta: beta, c: c, scratch: bits) })
        }
    }

    /// Output columns 64·panels of `multiplyPerThreadBlocked`'s product from
    /// plain bf16 rows of W in `scratch`, on the calling thread: for a panel
    /// whose own product failed, after the others' went into C.
    static func multiplyPanelsPlain(
        _ t: NF4Tensor, forward: Bool, _ panels: Range<Int>, m: Int, a: UnsafePointer<Float>, beta: Float, c: UnsafeMutablePointer<Float>,
        scratch bits: UnsafeMutablePointer<UInt16>
    ) {
        let (n, k) = forward ? (t.rows, t.columns) : (t.columns, t.rows)
        let columns = 64 * panels.lowerBound..<64 * panels.upperBound
        if forward {
            // W's rows are C's columns.
            t.dequantizeRowsBFloat16(columns, into: bits, context: ComputeContext(threads: 1))
            gemmBFloat16(transA: false, transB: true, m: m, n: columns.count, k: k, a: .f32(a), lda: k, b: .bf16(UnsafePointer(bits)), ldb: k,
                         beta: beta, c: c + columns.lowerBound, ldc: n)
        } else {
            t.dequantizeRowsBFloat16(0..<t.rows, into: bits, context: ComputeContext(threads: 1))
            gemmBFloat16(transA: false, transB: false, m: m, n: columns.count, k: k, a: .f32(a), lda: k,
                         b: .bf16(UnsafePointer(bits + columns.lowerBound)), ldb: n, beta: beta, c: c + columns.lowerBound, ldc: n)
        }
    }

    /// out (N, outDim) = inp (N, inDim) · Wᵀ.
    /// `tiles` (`tileFloats` of them) is needed by NF4 matrices only; up to
    /// `fewRows` rows each thread multiplies its own block of W's rows, but
    /// for a dense W with packed copies, which oneDNN reads at any rows
    /// (`gemmOnPackedCopy`), so that its plain rows may be released.
    func multiply(out: FloatPointer, inp: FloatPointer, n: Int, tiles: FloatPointer? = nil, context: ComputeContext,
                  fewRows: Int = fewRowsLimit) {
        switch self {
        case let .dense(w, o, i, packed):
            // No rows, no product: nor plain rows written back for one.
            guard n > 0 else { return }
            // A weight with copies multiplies through them at any rows, its first product of a
            // direction making that copy, so that what a product computes never depends on
            // whether an earlier one made it; the few-rows kernel is for weights without them.
            let throughCopies = packed != nil && fewRowsOnPackedCopy.isOn && OneDNNMatmul.makesBlockedF32Copies
            if let packed, n > fewRows || throughCopies,
               gemmOnPackedCopy(transB: true, m: n, n: o, k: i, a: inp.base, lda: i, ldb: i, beta: 0, c: out.base, ldc: o, packed: packed) {
                return
            }
            FrozenMatrix.withPlainRows(packed) {
                linearForward(out.base, inp.base, w.base, n: n, inDim: i, outDim: o, context: context, packed: packed,
                              fewRows: throughCopies ? 0 : fewRows)
            }
        case let .bf16(w):
            w.product(transB: true, m: n, a: inp.base, beta: 0, c: out.base, context: context)
        case let .nf4(t) where n <= fewRows:
            guard let tiles else { preconditionFailure("NF4 products need tile scratch") }
            // Each thread dequantises and multiplies its own tiles (decoding).
            let rows = FrozenMatrix.tileRows(columns: t.columns), tileCount = (t.rows + rows - 1) / rows
            context.withSingleThreadedBLAS {
                context.parallelChunks(tileCount) { chunk, range in
                    let tile = tiles.base + chunk * rows * t.columns
                    for index in range {
                        let r0 = index * rows, r1 = min(t.rows, r0 + rows)
                        t.dequantizeRows(r0..<r1, into: tile)
                        fewRowsProduct(out.base + r0, ldc: t.rows, inp.base, n: n, tile, rows: r1 - r0, depth: t.columns)
                    }
                }
            }
        case let .nf4(t):
            guard let tiles else { preconditionFailure("NF4 products need tile scratch") }
            if FrozenMatrix.multiplyPerThreadBlocked(t, forward: true, m: n, a: inp.base, beta: 0, c: out.base, scratch: tiles, context: context)
                || FrozenMatrix.multiplyBlocked(t, forward: true, m: n, a: inp.base, beta: 0, c: out.base, scratch: tiles, context: context)
                || FrozenMatrix.multiplyPerThread(t, forward: true, m: n, a: inp.base, beta: 0, c: out.base, scratch: tiles, context: context) {
                return
            }
            FrozenMatrix.withDequantized(t, scratch: tiles, context: context) { w in
                product(transA: false, transB: true, m: n, n: t.rows, k: t.columns, a: inp.base, lda: t.columns,
                        b: w, ldb: t.columns, beta: 0, c: out.base, ldc: t.rows)
            }
        }
    }

    /// dinp (N, inDim) (+)= dout (N, outDim) · W.
    func multiplyTransposed(dinp: FloatPointer, dout: FloatPointer, n: Int, accumulate: Bool, tiles: FloatPointer? = nil, context: ComputeContext) {
        switch self {
        case let .dense(w, o, i, packed):
            guard n > 0 else { return }
            if let packed, gemmOnPackedCopy(transB: false, m: n, n: i, k: o, a: dout.base, lda: o, ldb: i, beta: accumulate ? 1 : 0,
                                            c: dinp.base, ldc: i, packed: packed) {
                return
            }
            FrozenMatrix.withPlainRows(packed) {
                linearBackward(dinp: dinp.base, dweight: nil, dout: dout.base, inp: dout.base, weight: w.base,
                               n: n, inDim: i, outDim: o, accumulateInput: accumulate, packed: packed)
            }
        case let .bf16(w):
            w.product(transB: false, m: n, a: dout.base, beta: accumulate ? 1 : 0, c: dinp.base, context: context)
        case let .nf4(t):
            guard let tiles else { preconditionFailure("NF4 products need tile scratch") }
            if FrozenMatrix.multiplyPerThreadBlocked(t, forward: false, m: n, a: dout.base, beta: accumulate ? 1 : 0, c: dinp.base,
                                                     scratch: tiles, context: context)
                || FrozenMatrix.multiplyBlocked(t, forward: false, m: n, a: dout.base, beta: accumulate ? 1 : 0, c: dinp.base,
                                                scratch: tiles, context: context)
                || FrozenMatrix.multiplyPerThread(t, forward: false, m: n, a: dout.base, beta: accumulate ? 1 : 0, c: dinp.base,
                                                  scratch: tiles, context: context) {
                return
            }
            FrozenMatrix.withDequantized(t, scratch: tiles, context: context) { w in
                product(transA: false, transB: false, m: n, n: t.columns, k: t.rows, a: dout.base, lda: t.rows,
                        b: w, ldb: t.columns, beta: accumulate ? 1 : 0, c: dinp.base, ldc: t.columns)
            }
        }
    }
}

/// `gemm` with B in the storage `withDequantized` produced it in.
private func product(
    transA: Bool, transB: Bool, m: Int, n: Int, k: Int, a: UnsafePointer<Float>, lda: Int,
    b: ProductOperand, ldb: Int, beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int
) {
    switch b {
    case let .f32(floats):
        gemm(transA: transA, transB: transB, m: m, n: n, k: k, a: a, lda: lda, b: floats, ldb: ldb, beta: beta, c: c, ldc: ldc)
    case .bf16, .bf16Floats:
        gemmBFloat16(transA: transA, transB: transB, m: m, n: n, k: k, a: .f32(a), lda: lda, b: b, ldb: ldb,
                     beta: beta, c: c, ldc: ldc)
    }
}
