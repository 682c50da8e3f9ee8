// BFloat16Products: C (f32) = alpha·op(A)·op(B) + beta·C with A and B in
// bf16 and f32 accumulation — PyTorch CPU autocast's products. oneDNN's
// matmul runs them (brgemm `avx512_core_bf16` kernels with AVX512_BF16,
// gemm-based ones on other AVX-512 CPUs). Without oneDNN's bf16 kernels (a
// CPU without AVX-512, no oneDNN, or FACTSWEEP_MATMUL=openblas) the
// bf16-rounded inputs, exact in Float32, go through an f32 product (oneDNN's,
// or sgemm: Debian's OpenBLAS 0.3.21 exports no `cblas_sbgemm`), which gives
// the same numbers as a bf16 product with f32 accumulation.
import CBLAS
import CKernels

/// A product operand in the storage it is held in.
enum ProductOperand {
    /// Float32, rounded to bf16 for the product.
    case f32(UnsafePointer<Float>)
    /// Already bf16 (a frozen base matrix).
    case bf16(UnsafePointer<UInt16>)
    /// bf16 values already held in Float32 (QLoRA's base dequantised for a
    /// CPU without bf16 kernels): read as they are by the f32 path.
    case bf16Floats(UnsafePointer<Float>)
}

/// Operands at least this large are converted on all the product's threads.
private let parallelConversionElements = 1 << 16

/// On the f32 path, a bf16 B larger than this many elements is widened and
/// multiplied a block of its rows at a time (in `gemmBFloat16Untimed`): 4 MB of
/// Float32 per block, which stays in the last-level cache between its
/// widening and its product, instead of widening all of B (the head: 113 MB
/// at SmolLM2, 1 GiB at Llama-3.2-1B) into scratch before one product.
let widenedBlockElements = 1 << 20

/// C[m,n] = alpha · op(A)·op(B) + beta · C, row-major, A and B taken as bf16
/// (Float32 operands rounded to nearest even), accumulated and written in f32.
/// `packed` (B is a frozen weight) lets oneDNN's bf16 kernels read B from a
/// copy in their preferred layout made once, so neither the rounding of a
/// Float32 B nor oneDNN's re-blocking of it happens per call. On `engine`
/// oneDNN, `bf16Kernels` false multiplies in f32 as a CPU without them does
/// (tests run that path on every CPU: `ProductPrecision.withoutBF16Kernels`);
/// `widenedBlock` is `widenedBlockElements` unless a test names another.
func gemmBFloat16(
    transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float = 1,
    a: ProductOperand, lda: Int, b: ProductOperand, ldb: Int,
    beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int, engine: MatmulEngine = MatmulEngine.currentBF16,
    bf16Kernels: Bool = OneDNNMatmul.supportsBF16 && ProductPrecision.allowsBF16Kernels, packed: PackedWeight? = nil,
    widenedBlock: Int = widenedBlockElements
) {
    guard m > 0, n > 0 else { return }
    let threads = BLASThreads.threadsOutsideSections
    guard threads != nil else {
        return gemmBFloat16Untimed(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b, ldb: ldb,
                                   beta: beta, c: c, ldc: ldc, engine: engine, bf16Kernels: bf16Kernels, packed: packed, threads: nil,
                                   widenedBlock: widenedBlock)
    }
    var shape = ProductProfile.Shape(transA: transA, transB: transB, m: m, n: n, k: k, bf16: true, bStoredBF16: false,
                                     bPacked: packed != nil && OneDNNMatmul.reuse && engine == .oneDNN && bf16Kernels)
    switch b {
    case .bf16: shape.bStoredBF16 = true
    case .bf16Floats: shape.bHeldInFloats = true
    case .f32: break
    }
    ProductProfile.timed(shape) {
        gemmBFloat16Untimed(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b, ldb: ldb,
                            beta: beta, c: c, ldc: ldc, engine: engine, bf16Kernels: bf16Kernels, packed: packed, threads: threads,
                            widenedBlock: widenedBlock)
    }
}

private func gemmBFloat16Untimed(
    transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float,
    a: ProductOperand, lda: Int, b: ProductOperand, ldb: Int,
    beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int, engine: MatmulEngine, bf16Kernels: Bool, packed: PackedWeight?,
    threads: Int?, widenedBlock: Int
) {
    let scratch = ProductScratch.current
    let aRows = transA ? k : m, aCols = transA ? m : k
    let bRows = transB ? n : k, bCols = transB ? k : n
    if k > 0, engine == .oneDNN, bf16Kernels {
        let (aBits, aLD) = bf16(a, rows: aRows, columns: aCols, ld: lda, slot: 0, scratch, threads: threads ?? 1)
        // Inside single-threaded sections a one-thread primitive: the calling threads are the parallelism.
        var key = OneDNNMatmul.Key(
            transA: transA, transB: transB, m: m, n: n, k: k, lda: aLD, ldb: ldb, ldc: ldc,
            alpha: alpha, beta: beta, bf16: true, threads: threads ?? 1)
        if let packed, OneDNNMatmul.reuse {
            // The packed copy is bf16 either way: a Float32 B is rounded by the reorder that packs it.
            let (bRaw, bIsFloat): (UnsafeRawPointer, Bool) = switch b {
            case let .bf16(bits): (UnsafeRawPointer(bits), false)
            case let .f32(floats), let .bf16Floats(floats): (UnsafeRawPointer(floats), true)
            }
            if OneDNNMatmul.run(key, a: UnsafeMutableRawPointer(mutating: aBits), b: UnsafeMutableRawPointer(mutating: bRaw), c: c,
                                packed: packed, bIsFloat: bIsFloat) {
                return
            }
        }
        let (bBits, bLD) = bf16(b, rows: bRows, columns: bCols, ld: ldb, slot: 1, scratch, threads: threads ?? 1)
        key.ldb = bLD
        if OneDNNMatmul.run(key, a: UnsafeMutableRawPointer(mutating: aBits), b: UnsafeMutableRawPointer(mutating: bBits), c: c) {
            return
        }
    }
    // No bf16 kernels: the bf16-rounded inputs, exact in Float32, in an f32
    // product — oneDNN's where it runs (outside single-threaded sections), as
    // `gemm` runs f32 products.
    let (aFloats, aLD) = rounded(a, rows: aRows, columns: aCols, ld: lda, slot: 2, scratch, threads: threads ?? 1)
    if case let .bf16(bits) = b, bRows * bCols > widenedBlock {
        // Rows of B per block: whole rows, at least one.
        let rowsPerBlock = max(1, widenedBlock / bCols)
        var r0 = 0
        while r0 < bRows {
            let r1 = min(bRows, r0 + rowsPerBlock)
            let (block, bLD) = rounded(.bf16(bits + r0 * ldb), rows: r1 - r0, columns: bCols, ld: ldb, slot: 3, scratch,
                                       threads: threads ?? 1)
            if transB {
                // B's rows r0..<r1 give C's columns r0..<r1.
                f32Product(transA: transA, transB: true, m: m, n: r1 - r0, k: k, alpha: alpha, a: aFloats, lda: aLD, b: block, ldb: bLD,
                           beta: beta, c: c + r0, ldc: ldc, engine: engine, threads: threads)
            } else {
                // B's rows r0..<r1 are the terms r0..<r1 of every sum: op(A)'s columns r0..<r1; C sums the blocks.
                f32Product(transA: transA, transB: false, m: m, n: n, k: r1 - r0, alpha: alpha, a: transA ? aFloats + r0 * aLD : aFloats + r0,
                           lda: aLD, b: block, ldb: bLD, beta: r0 == 0 ? beta : 1, c: c, ldc: ldc, engine: engine, threads: threads)
            }
            r0 = r1
        }
        return
    }
    let (bFloats, bLD) = rounded(b, rows: bRows, columns: bCols, ld: ldb, slot: 3, scratch, threads: threads ?? 1)
    f32Product(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: aFloats, lda: aLD, b: bFloats, ldb: bLD,
               beta: beta, c: c, ldc: ldc, engine: engine, threads: threads)
}

/// C[m,n] = op(A)·B + beta·C in bf16, with B (k × n, or its transpose
/// n × k stored when `transB`) written by `fill` into `b` straight in the
/// layout oneDNN's bf16 product reads a packed B in: QLoRA's NF4 base,
/// dequantised into it (`NF4Tensor.dequantizeRowsBFloat16Blocked`) instead
/// of into plain rows that oneDNN re-blocks inside the call; or full
/// fine-tuning's rounding of a trained weight, which the update wrote there
/// (`BFloat16Matrix.init(rounding:)`; `bInScratch` false: B comes from
/// memory, as a frozen weight's). Returns false,
/// having run no product, when that path is shut here (no oneDNN bf16
/// kernels, reuse off, a layout other than the one `fill` writes, or `fill`
/// refusing the sizes); the caller then takes the plain path.
func gemmBFloat16IntoBlockedB(
    transB: Bool, m: Int, n: Int, k: Int, a: UnsafePointer<Float>, lda: Int, beta: Float,
    c: UnsafeMutablePointer<Float>, ldc: Int, b: UnsafeMutablePointer<UInt16>, bInScratch: Bool = true, fill: () -> Bool
) -> Bool {
    guard let key = prepackedKey(transB: transB, m: m, n: n, k: k, ldb: transB ? k : n, ldc: ldc, beta: beta),
          OneDNNMatmul.readsBlockedBFloat16(key), fill() else { return false }
    let ran = runOnPrepackedB(key, a: a, lda: lda, b: UnsafeMutableRawPointer(b), c: c, bInScratch: bInScratch)
    if ran { ProductScratch.current.blockedProducts += 1 }
    return ran
}

/// Whether a bf16 product of these sizes over a packed B would read it in
/// the layout `gemmBFloat16IntoBlockedB` takes (false where that path is
/// shut here).
func readsBlockedBFloat16B(transB: Bool, m: Int, n: Int, k: Int) -> Bool {
    guard let key = prepackedKey(transB: transB, m: m, n: n, k: k, ldb: transB ? k : n, ldc: n, beta: 0) else { return false }
    return OneDNNMatmul.readsBlockedBFloat16(key)
}

/// C[m,n] = A·op(B) + beta·C in bf16 as one product per thread, each over
/// its own column panels of B (64 columns each: the outermost blocks of the
/// layout oneDNN's bf16 kernels read a packed B in), which `fill(panels)`
/// writes into `b` on that thread just before its product reads them. So
/// the bf16 values a thread dequantised are read by the core that wrote
/// them, and no barrier stands between writing and reading. A is Float32
/// (m × k, packed rows), rounded once on the calling thread. Thread t's
/// product is C's columns 64·panels, each a whole sum over k as in one
/// product, written into dense scratch of its own and then added into C
/// (`c = acc + beta·c`, as oneDNN's sum does): oneDNN 2.6's brgemm kernels
/// take no C with a row stride wider than its columns, and choose a plain
/// B (`gemm:jit`) or the reference code for one. Returns false, having run
/// nothing, when the path is shut (no oneDNN bf16 kernels, reuse off, fewer
/// than two panels a thread, another layout than `fill` writes). A panel
/// whose product fails is run again by `fallback(panels)` on the calling
/// thread.
func gemmBFloat16PerThreadIntoPanels(
    transB: Bool, m: Int, n: Int, k: Int, a: UnsafePointer<Float>, beta: Float, c: UnsafeMutablePointer<Float>,
    b: UnsafeMutablePointer<UInt16>, context: ComputeContext, fill: (Range<Int>) -> Bool, fallback: (Range<Int>) -> Void
) -> Bool {
    let threads = context.threads, panelCount = n / 64
    guard m > 0, n > 0, k > 0, n % 64 == 0, threads > 1, panelCount >= 2 * threads, MatmulEngine.currentBF16 == .oneDNN,
          OneDNNMatmul.supportsBF16, ProductPrecision.allowsBF16Kernels, OneDNNMatmul.reuse else { return false }
    let panels = (0..<threads).map { panelCount * $0 / threads..<panelCount * ($0 + 1) / threads }
    // One-thread primitives over a chunk's columns, into dense scratch, each reading its panels as they are laid.
    let keys = panels.map { p in
        OneDNNMatmul.Key(transA: false, transB: transB, m: m, n: 64 * p.count, k: k, lda: k, ldb: transB ? k : 64 * p.count,
                         ldc: 64 * p.count, alpha: 1, beta: 0, bf16: true, threads: 1)
    }
    guard keys.allSatisfy(OneDNNMatmul.readsBlockedBFloat16) else { return false }
    let (aBits, _) = bf16(.f32(a), rows: m, columns: k, ld: k, slot: 0, ProductScratch.current, threads: threads)
    // Each thread's failure flag, on the stack: this runs for every product of a QLoRA step.
    return withUnsafeTemporaryAllocation(of: Bool.self, capacity: threads) { flags in
        let failed = UncheckedSendable(flags.baseAddress!)
        failed.value.initialize(repeating: false, count: threads)
        let shared = UncheckedSendable((a: UnsafeMutableRawPointer(mutating: aBits), b: b, c: c))
        context.withSingleThreadedBLAS {
            context.parallelChunks(threads) { chunk, _ in
                let p = panels[chunk], key = keys[chunk], width = key.n, first = 64 * p.lowerBound
                let out = ProductScratch.current.buffer(2, bytes: 4 * m * width).bindMemory(to: Float.self, capacity: m * width)
                guard fill(p) else {
                    failed.value[chunk] = true
                    return
                }
                func product() -> Bool { OneDNNMatmul.runPrepacked(key, a: shared.value.a, b: shared.value.b + first * k, c: out) }
                // One thread's product stands for all of the region's, as they run side by side: the last
                // chunk's, the widest when the panels do not split evenly (4 and 5 of n = 576), so the
                // entry is the region's longest share (the dequantisation untimed).
                var ran = false
                if chunk == threads - 1 {
                    ProductProfile.timed(ProductProfile.Shape(transA: false, transB: transB, m: m, n: width, k: k, bf16: true, bStoredBF16: true,
                                                              bPacked: true, onOneThread: true, bInScratch: true)) { ran = product() }
                } else {
                    ran = product()
                }
                guard ran else {
                    failed.value[chunk] = true
                    return
                }
                for r in 0..<m {
                    let row = shared.value.c + r * n + first, sums = out + r * width
                    if beta == 0 {
                        row.update(from: sums, count: width)
                    } else {
                        for j in 0..<width { row[j] = sums[j] + beta * row[j] }
                    }
                }
            }
        }
        for chunk in 0..<threads where failed.value[chunk] { fallback(panels[chunk]) }
        ProductScratch.current.perThreadProducts += 1
        return true
    }
}

/// C[m,n] = A·op(B) + beta·C in bf16 over the current packed copy in
/// `packed` for this product's layout, B's plain values not read: true when
/// such a copy exists and the product ran; false, having run nothing, when
/// the path is shut here (as `gemmBFloat16IntoBlockedB`'s) or no current
/// copy has the layout (the caller then takes `gemmBFloat16` over B's plain
/// bits, which makes it). A is Float32 (m × k, leading dimension `lda`); the
/// key is the one `gemmBFloat16` makes for a packed B, so the same primitive
/// reads the same copy.
func gemmBFloat16OnPackedCopy(
    transB: Bool, m: Int, n: Int, k: Int, a: UnsafePointer<Float>, lda: Int, ldb: Int, beta: Float,
    c: UnsafeMutablePointer<Float>, ldc: Int, packed: PackedWeight
) -> Bool {
    guard let key = prepackedKey(transB: transB, m: m, n: n, k: k, ldb: ldb, ldc: ldc, beta: beta),
          let copy = OneDNNMatmul.currentPackedCopy(key, in: packed) else { return false }
    return runOnPrepackedB(key, a: a, lda: lda, b: copy, c: c)
}

/// The key of a bf16 product whose B is already in oneDNN's packed layout
/// and whose Float32 A is rounded into a packed bf16 copy (leading
/// dimension k, whether made for it or shared): `gemmBFloat16`'s key for a
/// packed B. Nil when that path is shut here: an empty product, no oneDNN
/// bf16 kernels, or reuse off.
private func prepackedKey(transB: Bool, m: Int, n: Int, k: Int, ldb: Int, ldc: Int, beta: Float) -> OneDNNMatmul.Key? {
    guard m > 0, n > 0, k > 0, MatmulEngine.currentBF16 == .oneDNN, OneDNNMatmul.supportsBF16, ProductPrecision.allowsBF16Kernels,
          OneDNNMatmul.reuse else { return nil }
    return OneDNNMatmul.Key(transA: false, transB: transB, m: m, n: n, k: k, lda: k, ldb: ldb, ldc: ldc,
                            alpha: 1, beta: beta, bf16: true, threads: BLASThreads.threadsOutsideSections ?? 1)
}

/// Runs `key`'s packed-B primitive on `b` (already in its layout), A rounded
/// to bf16 on the way; timed as `gemmBFloat16` times a product over a
/// packed B (A's rounding included, B's making not; not inside
/// single-threaded sections). False when the call fails.
private func runOnPrepackedB(
    _ key: OneDNNMatmul.Key, a: UnsafePointer<Float>, lda: Int, b: UnsafeMutableRawPointer, c: UnsafeMutablePointer<Float>,
    bInScratch: Bool = false
) -> Bool {
    let threads = BLASThreads.threadsOutsideSections, scratch = ProductScratch.current
    var ran = false
    func run() {
        let (aBits, aLD) = bf16(.f32(a), rows: key.m, columns: key.k, ld: lda, slot: 0, scratch, threads: threads ?? 1)
        precondition(aLD == key.k, "A's bf16 copy is not packed")
        ran = OneDNNMatmul.runPrepacked(key, a: UnsafeMutableRawPointer(mutating: aBits), b: b, c: c)
    }
    guard threads != nil else { run(); return ran }
    ProductProfile.timed(ProductProfile.Shape(transA: false, transB: key.transB, m: key.m, n: key.n, k: key.k, bf16: true,
                                              bStoredBF16: true, bPacked: true, bInScratch: bInScratch), run)
    return ran
}

extension BFloat16Matrix {
    /// C (m × n) = A · op(W) + beta·C, A Float32 (m × k, packed rows): the
    /// forward's X · Wᵀ (`transB`: n = rows, k = columns) or the backward's
    /// dY · W (n = columns, k = rows). A trained matrix with a blocked
    /// rounding reads it (made first when stale). A matrix that packs reads its current
    /// packed copy for the product's layout without its plain bits; else
    /// the plain bits (made again if released), packing them on a copy's
    /// first use, after which a frozen matrix releases them once both
    /// directions are packed (`releasePlainBitsIfPacked`).
    func product(transB: Bool, m: Int, a: UnsafePointer<Float>, beta: Float, c: UnsafeMutablePointer<Float>, context: ComputeContext) {
        // No rows, no product (as `gemmBFloat16`): nor plain bits made again for one.
        guard m > 0 else { return }
        let (n, k) = transB ? (rows, columns) : (columns, rows)
        if let bits = blockedRounding(transB: transB),
           gemmBFloat16IntoBlockedB(transB: transB, m: m, n: n, k: k, a: a, lda: k, beta: beta, c: c, ldc: n, b: bits,
                                    bInScratch: false, fill: { makeBlockedRoundingCurrent(context: context); return true }) {
            return
        }
        if let packed = packedIfEnabled,
           gemmBFloat16OnPackedCopy(transB: transB, m: m, n: n, k: k, a: a, lda: k, ldb: columns, beta: beta, c: c, ldc: n,
                                    packed: packed) {
            return
        }
        withBits(context: context) { bits in
            gemmBFloat16(transA: false, transB: transB, m: m, n: n, k: k, a: .f32(a), lda: k, b: .bf16(bits), ldb: columns,
                         beta: beta, c: c, ldc: n, packed: packedIfEnabled)
        }
        releasePlainBitsIfPacked()
    }
}

/// The f32 product of bf16-rounded operands: on oneDNN's f32 matmul outside
/// single-threaded sections (`threads` non-nil), as `gemm` runs f32
/// products, else (or where oneDNN refuses the shape) on sgemm.
private func f32Product(
    transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float, a: UnsafePointer<Float>, lda: Int,
    b: UnsafePointer<Float>, ldb: Int, beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int, engine: MatmulEngine, threads: Int?
) {
    if k > 0, engine == .oneDNN, let threads {
        let key = OneDNNMatmul.Key(
            transA: transA, transB: transB, m: m, n: n, k: k, lda: lda, ldb: ldb, ldc: ldc,
            alpha: alpha, beta: beta, bf16: false, threads: threads)
        if OneDNNMatmul.run(key, a: UnsafeMutableRawPointer(mutating: a), b: UnsafeMutableRawPointer(mutating: b), c: c) {
            return
        }
    }
    sgemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b, ldb: ldb,
          beta: beta, c: c, ldc: ldc)
}

/// The operand as bf16 and its leading dimension: a bf16 operand as it is,
/// a Float32 one converted (packed) into the open `sharingBFloat16Copy`
/// scope's copy when one holds it, else into scratch `slot`.
private func bf16(
    _ operand: ProductOperand, rows: Int, columns: Int, ld: Int, slot: Int, _ scratch: ProductScratch, threads: Int
) -> (UnsafePointer<UInt16>, Int) {
    switch operand {
    case let .bf16(bits):
        return (bits, ld)
    case let .bf16Floats(floats):
        let packed = scratch.buffer(slot, bytes: 2 * rows * columns).bindMemory(to: UInt16.self, capacity: rows * columns)
        convert(floats, into: packed, rows: rows, columns: columns, ld: ld, scratch, threads: threads)
        return (UnsafePointer(packed), columns)
    case let .f32(floats):
        if let index = scratch.sharedCopyIndex(floats, rows: rows, columns: columns, ld: ld) {
            let copy = scratch.sharedCopies[index]
            if !copy.filled {
                convert(floats, into: copy.bits, rows: rows, columns: columns, ld: ld, scratch, threads: threads)
                scratch.markFilled(index)
            }
            return (UnsafePointer(copy.bits), columns)
        }
        let packed = scratch.buffer(slot, bytes: 2 * rows * columns).bindMemory(to: UInt16.self, capacity: rows * columns)
        convert(floats, into: packed, rows: rows, columns: columns, ld: ld, scratch, threads: threads)
        return (UnsafePointer(packed), columns)
    }
}

private func convert(
    _ floats: UnsafePointer<Float>, into packed: UnsafeMutablePointer<UInt16>, rows: Int, columns: Int, ld: Int,
    _ scratch: ProductScratch, threads: Int
) {
    scratch.conversions += 1
    ComputeContext(threads: rows * columns >= parallelConversionElements ? threads : 1).parallelFor(rows) { part in
        convertToBFloat16(packed + part.lowerBound * columns, floats + part.lowerBound * ld,
                          rows: part.count, columns: columns, ld: ld)
    }
}

/// Runs `body`, inside which the bf16 products on this thread that read
/// `matrix` (rows × columns, leading dimension `ld`, default `columns`) as an
/// operand, either side, transposed or not, share one bf16 copy of it, made
/// by the first. The q, k and v projections read the same normed input, a
/// LoRA projection reads its input in its base and its adapter product, and
/// its output gradient in three: rounding each once instead of per product
/// gives the same bits. The caller must not write `matrix` inside `body`.
/// Products that run on other threads (single-threaded sections) round
/// their own copies. In f32 it just runs `body`.
func sharingBFloat16Copy<Result>(
    of matrix: FloatPointer, rows: Int, columns: Int, ld: Int? = nil, _ body: () throws -> Result
) rethrows -> Result {
    guard ProductPrecision.current == .bf16, rows > 0, columns > 0 else { return try body() }
    let scratch = ProductScratch.current
    let opened = scratch.openSharedCopy(UnsafePointer(matrix.base), rows: rows, columns: columns, ld: ld ?? columns)
    defer { if opened { scratch.closeSharedCopy() } }
    return try body()
}

/// The operand's bf16 values as Float32 (exact) and their leading dimension:
/// held values as they are, others in scratch `slot`, converted on `threads`
/// threads when large.
private func rounded(
    _ operand: ProductOperand, rows: Int, columns: Int, ld: Int, slot: Int, _ scratch: ProductScratch, threads: Int
) -> (UnsafePointer<Float>, Int) {
    if case let .bf16Floats(floats) = operand { return (floats, ld) }
    let floats = scratch.buffer(slot, bytes: 4 * max(1, rows * columns)).bindMemory(to: Float.self, capacity: max(1, rows * columns))
    ComputeContext(threads: rows * columns >= parallelConversionElements ? threads : 1).parallelFor(rows) { part in
        let destination = floats + part.lowerBound * columns
        switch operand {
        case let .bf16(bits):
            convertFromBFloat16(destination, bits + part.lowerBound * ld, rows: part.count, columns: columns, ld: ld)
        case let .f32(source), let .bf16Floats(source):
            roundToBFloat16Floats(destination, source + part.lowerBound * ld, rows: part.count, columns: columns, ld: ld)
        }
    }
    return (UnsafePointer(floats), columns)
}

/// Runs `body` with the scopes it opens on the calling thread sharing
/// nothing (products on that thread round their own operands), so that tests
/// can show that sharing changes no bit. Scopes opened on other threads
/// (attention's, on a parallel loop's workers) still share.
func withoutSharedBFloat16Copies<Result>(_ body: () throws -> Result) rethrows -> Result {
    let scratch = ProductScratch.current
    let previous = scratch.sharingDisabled
    scratch.sharingDisabled = true
    defer { scratch.sharingDisabled = previous }
    return try body()
}
