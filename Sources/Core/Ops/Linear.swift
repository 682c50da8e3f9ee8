// Linear: y = x·Wᵀ, with W in PyTorch's [out, in] layout, and its backward.
// Every matrix product of the core goes through `gemm` below, which runs it
// on the process's `MatmulEngine`; decoding's f32 products of at most 32 rows
// over a weight without packed copies run on a kernel of their own (the
// `context:` overload of `linearForward`).
import CBLAS
import CKernels

/// C[m,n] = alpha · op(A)·op(B) + beta · C, row-major, with explicit leading
/// dimensions so that heads can be addressed inside wider rows.
///
/// Inside `ProductPrecision.run(.bf16)` the inputs are rounded to bf16 and
/// accumulated in f32 (`gemmBFloat16`). In f32, on `MatmulEngine.oneDNN` the product runs through a oneDNN primitive made
/// once for its shape; inside single-threaded sections (per-head and
/// per-block products already split across threads) and for shapes oneDNN
/// refuses, it runs on OpenBLAS. `packed` (B is a frozen weight) lets oneDNN
/// read B from a copy in its preferred layout made once (`PackedWeight`).
/// `engine` is the process's unless a test names one.
@inline(__always)
public func gemm(
    transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float = 1,
    a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
    beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int, packed: PackedWeight? = nil,
    engine: MatmulEngine = MatmulEngine.current
) {
    if ProductPrecision.current == .bf16 {
        return gemmBFloat16(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: .f32(a), lda: lda,
                            b: .f32(b), ldb: ldb, beta: beta, c: c, ldc: ldc, packed: packed)
    }
    guard let threads = BLASThreads.threadsOutsideSections else {
        return sgemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
    }
    let key = OneDNNMatmul.Key(
        transA: transA, transB: transB, m: m, n: n, k: k, lda: lda, ldb: ldb, ldc: ldc,
        alpha: alpha, beta: beta, bf16: false, threads: threads)
    // Read from a packed copy: oneDNN's, when it makes one (not for a B it reads in place); evaluated only while profiling.
    ProductProfile.timed(ProductProfile.Shape(
        transA: transA, transB: transB, m: m, n: n, k: k, bf16: false, bStoredBF16: false,
        bPacked: packed != nil && OneDNNMatmul.reuse && engine == .oneDNN && !OneDNNMatmul.readsPackedInPlace(key))) {
        if engine == .oneDNN, m > 0, n > 0, k > 0 {
            if OneDNNMatmul.run(key, a: UnsafeMutableRawPointer(mutating: a), b: UnsafeMutableRawPointer(mutating: b), c: c,
                                packed: packed) {
                return
            }
        }
        sgemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
    }
}

/// `gemm` in f32 on the calling thread alone, for one thread of a
/// parallel region that multiplies its own share (inside
/// `ComputeContext.withSingleThreadedBLAS`): oneDNN's primitive for one
/// thread when the engine is oneDNN and has one, else OpenBLAS, single-
/// threaded there. With `profiled` the product is timed as the shape's
/// share on one thread (`ProductProfile.Shape.onOneThread`): one thread's
/// product stands for all of the region's, as they run side by side.
func gemmOnOneThread(
    transA: Bool, transB: Bool, m: Int, n: Int, k: Int, a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
    beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int, profiled: Bool = false
) {
    func run() {
        if MatmulEngine.current == .oneDNN, m > 0, n > 0, k > 0 {
            let key = OneDNNMatmul.Key(transA: transA, transB: transB, m: m, n: n, k: k, lda: lda, ldb: ldb, ldc: ldc,
                                       alpha: 1, beta: beta, bf16: false, threads: 1)
            if OneDNNMatmul.run(key, a: UnsafeMutableRawPointer(mutating: a), b: UnsafeMutableRawPointer(mutating: b), c: c) { return }
        }
        sgemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: 1, a: a, lda: lda, b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
    }
    guard profiled else { return run() }
    ProductProfile.timed(ProductProfile.Shape(transA: transA, transB: transB, m: m, n: n, k: k, bf16: false, bStoredBF16: false,
                                              bPacked: false, onOneThread: true), run)
}

/// OpenBLAS's `cblas_sgemm` with `gemm`'s arguments.
@inline(__always)
func sgemm(
    transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float,
    a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
    beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int
) {
    cblas_sgemm(
        CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
        Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
}

/// The switch of the packed copies' use by few-row products
/// (`FrozenMatrix.multiply`): `FACTSWEEP_FEW_ROWS_PACKED=off` for the
/// benchmark's before/after (plain rows a few-row product needs are then
/// written back and kept); tests turn it off per thread to compare with
/// the few-rows kernel.
let fewRowsOnPackedCopy = PathSwitch(environmentKey: "FACTSWEEP_FEW_ROWS_PACKED")

/// C[m,n] = A·op(B) + beta·C in f32 over the current packed copy in
/// `packed` for this product's layout (oneDNN's, made by an earlier product
/// of that direction), B's plain rows not read: true when such a copy exists
/// and the product ran; false, having run nothing, when none does, the
/// engine is not oneDNN, reuse is off, the precision is not f32, or the
/// calling thread is inside a single-threaded section. A is m × k with
/// leading dimension `lda`.
///
/// Why: a product that reads no plain rows lets a model release them
/// (`ReleasablePlainRows`). Decoding's products (1–32 rows) over a frozen
/// weight ran on the few-rows kernel over its plain rows; in SmolLM2's
/// evaluation, whose passes stream the weights, the two were level within
/// the VM's noise (docs/benchmarks.md, "Issue 13, fortieth stop").
func gemmOnPackedCopy(
    transB: Bool, m: Int, n: Int, k: Int, a: UnsafePointer<Float>, lda: Int, ldb: Int, beta: Float,
    c: UnsafeMutablePointer<Float>, ldc: Int, packed: PackedWeight
) -> Bool {
    guard m > 0, n > 0, k > 0, ProductPrecision.current == .f32, MatmulEngine.current == .oneDNN, OneDNNMatmul.reuse,
          let threads = BLASThreads.threadsOutsideSections else { return false }
    let key = OneDNNMatmul.Key(transA: false, transB: transB, m: m, n: n, k: k, lda: lda, ldb: ldb, ldc: ldc,
                               alpha: 1, beta: beta, bf16: false, threads: threads)
    guard let copy = OneDNNMatmul.currentPackedCopy(key, in: packed) else { return false }
    var ran = false
    ProductProfile.timed(ProductProfile.Shape(transA: false, transB: transB, m: m, n: n, k: k, bf16: false, bStoredBF16: false,
                                              bPacked: true)) {
        ran = OneDNNMatmul.runPrepacked(key, a: UnsafeMutableRawPointer(mutating: a), b: copy, c: c)
    }
    return ran
}

/// out = inp · weightᵀ, or out += … when `accumulate`; `packed` as in `gemm`.
/// - inp: (N, inDim); weight: (outDim, inDim); out: (N, outDim).
public func linearForward(
    _ out: UnsafeMutablePointer<Float>, _ inp: UnsafePointer<Float>, _ weight: UnsafePointer<Float>,
    n: Int, inDim: Int, outDim: Int, accumulate: Bool = false, packed: PackedWeight? = nil
) {
    gemm(transA: false, transB: true, m: n, n: outDim, k: inDim,
         a: inp, lda: inDim, b: weight, ldb: inDim, beta: accumulate ? 1 : 0, c: out, ldc: outDim, packed: packed)
}

/// Products with at most this many rows are split by the weight's rows (see
/// the `context:` overload of `linearForward`): the default, which training's
/// forward keeps (its products from 17 rows on, such as the head over a
/// step's answer rows, stay on the engine, where `ProductProfile` times them).
public let fewRowsLimit = 16

/// The same limit for decoding's passes (`projectionInference`, the cached
/// generator's head), whose weights stream from memory: there the few-rows
/// kernel leads oneDNN up to 16 rows, is level with it at 24–32 and trails
/// it from 48 (`bench --products`, docs/benchmarks.md).
public let decodingFewRowsLimit = 32

/// out = inp · weightᵀ, as `linearForward`, using `context`'s threads.
/// - inp: (N, inDim); weight: (outDim, inDim); out: (N, outDim).
///
/// With N ≤ `fewRowsLimit` the product is bound by reading the weight once:
/// each thread takes its own block of the weight's rows, and in f32 multiplies
/// it with CKernels' few-rows product (`few_rows.c`), which reads each weight
/// row once instead of packing it as an sgemm call does (at 2–12 rows that
/// halved a SmolLM2 decoding step; docs/benchmarks.md, "Evaluation cost").
/// Its sums round differently from sgemm's. In bf16 precision each block is
/// a bf16 product. Larger N goes to one `gemm` call. `fewRows` moves that
/// limit (`bench --products` times both paths at every N with it).
public func linearForward(
    _ out: UnsafeMutablePointer<Float>, _ inp: UnsafePointer<Float>, _ weight: UnsafePointer<Float>,
    n: Int, inDim: Int, outDim: Int, context: ComputeContext, packed: PackedWeight? = nil, fewRows limit: Int = fewRowsLimit
) {
    guard n <= limit else { return linearForward(out, inp, weight, n: n, inDim: inDim, outDim: outDim, packed: packed) }
    context.withSingleThreadedBLAS {
        // Blocks of 16 output rows keep each thread's columns of `out` aligned.
        let blocks = (outDim + 15) / 16
        context.parallelFor(blocks) { range in
            let lo = range.lowerBound * 16, hi = min(outDim, range.upperBound * 16)
            fewRowsProduct(out + lo, ldc: outDim, inp, n: n, weight + lo * inDim, rows: hi - lo, depth: inDim)
        }
    }
}

/// out (n, `rows` columns, `ldc` apart) = inp (n, depth) · weightᵀ for one
/// block of a weight's rows (rows, depth), on the calling thread: the
/// few-rows kernel in f32 (on `path`: tests run each), a `gemm` in bf16.
/// Callers split a weight across threads inside `withSingleThreadedBLAS`.
func fewRowsProduct(
    _ out: UnsafeMutablePointer<Float>, ldc: Int, _ inp: UnsafePointer<Float>, n: Int,
    _ weight: UnsafePointer<Float>, rows: Int, depth: Int, path: KernelPath = .widest
) {
    if ProductPrecision.current == .f32 {
        factsweep_few_rows_product_on(out, ldc, inp, n, weight, rows, depth, path.code)
    } else {
        gemm(transA: false, transB: true, m: n, n: rows, k: depth, a: inp, lda: depth, b: weight, ldb: depth, beta: 0, c: out, ldc: ldc)
    }
}

/// Backward of `linearForward`.
/// - dinp: (N, inDim) += dout · weight, or = when `!accumulateInput` (skipped when nil:
///   nothing upstream needs it);
/// - dweight: (outDim, inDim) = doutᵀ · inp, overwritten as every trained gradient is
///   (`LlamaNetwork.backward`; skipped when nil: the weight is frozen);
/// - dout: (N, outDim); inp: (N, inDim); weight: (outDim, inDim); `packed` as in `gemm` (the weight's).
public func linearBackward(
    dinp: UnsafeMutablePointer<Float>?, dweight: UnsafeMutablePointer<Float>?,
    dout: UnsafePointer<Float>, inp: UnsafePointer<Float>, weight: UnsafePointer<Float>,
    n: Int, inDim: Int, outDim: Int, accumulateInput: Bool = true, packed: PackedWeight? = nil
) {
    if let dinp {
        gemm(transA: false, transB: false, m: n, n: inDim, k: outDim,
             a: dout, lda: outDim, b: weight, ldb: inDim, beta: accumulateInput ? 1 : 0, c: dinp, ldc: inDim, packed: packed)
    }
    if let dweight {
        gemm(transA: true, transB: false, m: outDim, n: inDim, k: n,
             a: dout, lda: outDim, b: inp, ldb: inDim, beta: 0, c: dweight, ldc: inDim)
    }
}
