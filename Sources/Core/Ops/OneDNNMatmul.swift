// OneDNNMatmul: row-major products through oneDNN's matmul primitive, one
// primitive per shape created on first use and kept for the process; each
// calling thread runs them on its own stream and scratchpad, made once, and
// its own memory objects per primitive, pointed at each call's buffers; frozen
// weights are reordered once into the layout the primitive prefers
// (`PackedWeight`).
import CDNNL
import CKernels
import Foundation

/// oneDNN's CPU engine and the primitives made on it.
enum OneDNNMatmul {
    /// What makes one primitive: the product's shape and layout, its alpha
    /// and beta (baked in as output scale and sum post-op), the input type,
    /// whether B comes packed (`PackedWeight`) and the thread count (oneDNN
    /// picks its blocking for the threads it has).
    struct Key: Hashable {
        var transA: Bool, transB: Bool
        var m: Int, n: Int, k: Int, lda: Int, ldb: Int, ldc: Int
        var alpha: Float, beta: Float
        var bf16: Bool
        var packedB = false
        var threads: Int
    }

    /// A primitive and what running it needs, read once when it is made.
    final class Primitive: @unchecked Sendable {
        let handle: dnnl_primitive_t
        let scratchpadBytes: Int
        /// B's layout when the primitive was made for a packed B.
        let weightsDesc: dnnl_memory_desc_t?
        /// The packed B's row stride when that layout is plain rows (oneDNN's
        /// AVX2 matmul's choice), else 0: such a copy is split like a plain B.
        let packedRowStride: Int

        init(_ handle: dnnl_primitive_t, packedB: Bool) {
            self.handle = handle
            scratchpadBytes = factsweep_scratchpad_bytes(handle)
            var desc = dnnl_memory_desc_t()
            weightsDesc = packedB && factsweep_weights_desc(handle, &desc) == dnnl_success ? desc : nil
            packedRowStride = weightsDesc.map { desc in Int(withUnsafePointer(to: desc) { factsweep_plain_row_stride($0) }) } ?? 0
        }

        deinit { dnnl_primitive_destroy(handle) }
    }

    private final class State: @unchecked Sendable {
        let engine: dnnl_engine_t?
        let lock = NSLock()
        /// nil for a shape oneDNN refused (it then runs on OpenBLAS).
        var primitives: [Key: Primitive?] = [:]

        /// Whether oneDNN refused `FACTSWEEP_MAX_CPU_ISA`'s cap (a build without `DNNL_ENABLE_MAX_CPU_ISA`).
        let capRefused: Bool

        init() {
            // Before oneDNN first asks the CPU: the cap holds only if set then.
            capRefused = factsweep_cpu_capped_to_avx2() != 0 && dnnl_set_max_cpu_isa(dnnl_cpu_isa_avx2) != dnnl_success
            var engine: dnnl_engine_t?
            self.engine = dnnl_engine_create(&engine, dnnl_cpu, 0) == dnnl_success ? engine : nil
        }
    }

    private static let state = State()

    /// The environment variable that holds the core to an AVX2 host's code (`avx2`; cpu.h).
    public static let capEnvironmentKey = "FACTSWEEP_MAX_CPU_ISA"

    /// What is wrong with `FACTSWEEP_MAX_CPU_ISA`: a value other than `avx2`,
    /// or a cap that oneDNN or OpenBLAS does not keep (oneDNN still on AVX-512
    /// kernels, `OPENBLAS_CORETYPE` naming an AVX-512 set), so that no process
    /// runs capped kernels beside AVX-512 products. Nil when unset or empty,
    /// or kept; a CPU below AVX2 keeps it by having nothing wider.
    static var capProblem: String? {
        guard let value = ProcessInfo.processInfo.environment[capEnvironmentKey], !value.isEmpty else { return nil }
        guard factsweep_cpu_capped_to_avx2() != 0 else {
            return "\(capEnvironmentKey)='\(value)' names no cap: use avx2 (run as a CPU without AVX-512 does), or unset it"
        }
        if isAvailable, let isa = instructionSet, isa.hasPrefix("avx512") {
            return "\(capEnvironmentKey)=\(value), but oneDNN here did not take the cap (it runs \(isa) kernels"
                + "\(state.capRefused ? "; dnnl_set_max_cpu_isa refused" : "")): unset it"
        }
        if let core = ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"], OpenBLASCore.avx512Sets.contains(core.lowercased()) {
            return "\(capEnvironmentKey)=\(value), but OPENBLAS_CORETYPE=\(core) asks for AVX-512 kernels: unset it, or set Haswell"
        }
        return nil
    }

    /// Whether oneDNN's CPU engine could be created.
    static var isAvailable: Bool { state.engine != nil }

    /// Whether oneDNN has a bf16 matmul on this CPU. oneDNN 2.6 implements
    /// bf16 products only from AVX-512 on (`avx512_core`, natively with
    /// AVX512_BF16): on an AVX2 CPU it refuses every bf16 primitive. Asked
    /// once, by making one small primitive, so that a bf16 run on such a CPU
    /// multiplies in f32 from the start (`MatmulEngine.hasBF16Kernels`)
    /// instead of converting operands for a primitive that is then refused.
    static let supportsBF16: Bool = {
        guard let engine = state.engine else { return false }
        var made: dnnl_primitive_t?
        let status = factsweep_matmul_create(&made, engine, 0, 1, 16, 16, 16, 16, 16, 16, 1, 0, 1, 0)
        if let made { dnnl_primitive_destroy(made) }
        return status == dnnl_success && made != nil
    }()

    /// The widest instruction set oneDNN's kernels use on this CPU, as
    /// oneDNN names it (`avx512_core_bf16`, `avx2`, …); nil without oneDNN.
    static var instructionSet: String? {
        guard isAvailable else { return nil }
        return switch dnnl_get_effective_cpu_isa() {
        case dnnl_cpu_isa_sse41: "sse41"
        case dnnl_cpu_isa_avx: "avx"
        case dnnl_cpu_isa_avx2: "avx2"
        case dnnl_cpu_isa_avx2_vnni: "avx2_vnni"
        case dnnl_cpu_isa_avx512_mic: "avx512_mic"
        case dnnl_cpu_isa_avx512_mic_4ops: "avx512_mic_4ops"
        case dnnl_cpu_isa_avx512_core: "avx512_core"
        case dnnl_cpu_isa_avx512_core_vnni: "avx512_core_vnni"
        case dnnl_cpu_isa_avx512_core_bf16: "avx512_core_bf16"
        case dnnl_cpu_isa_avx512_core_amx: "avx512_core_amx"
        default: "unknown"
        }
    }

    /// How many primitives exist (one per distinct shape seen).
    static var primitiveCount: Int {
        state.lock.lock()
        defer { state.lock.unlock() }
        return state.primitives.values.filter { $0 != nil }.count
    }

    /// Products the calling thread has run through its kept stream (the reuse
    /// path); tests check with it that a product reached oneDNN.
    static var executionsOnThisThread: Int {
        guard let engine = state.engine else { return 0 }
        return ThreadContext.current(engine: engine).executions
    }

    /// The environment variable that turns reuse off (`off`): a stream and a
    /// scratchpad made per call and no packed weights, as before reuse — for
    /// the benchmark's before/after and the tests' uncached reference.
    static let reuseEnvironmentKey = "FACTSWEEP_ONEDNN_REUSE"

    private static let reuseSetting = LockedValue<Bool>(
        ProcessInfo.processInfo.environment[reuseEnvironmentKey]?.lowercased() != "off")

    /// Whether calls reuse their thread's stream and scratchpad and packed frozen weights.
    static var reuse: Bool {
        get { reuseSetting.withLock { $0 } }
        set { reuseSetting.withLock { $0 = newValue } }
    }

    /// Runs C = alpha·op(A)·op(B) + beta·C on `threads` OpenMP threads; false
    /// when oneDNN has no primitive for it (the caller then uses OpenBLAS).
    /// With `packed` (B is a frozen weight) B is read from its packed copy for
    /// this primitive's layout, made on first use (from a Float32 `b` when
    /// `bIsFloat`, converted to bf16 on the way for a bf16 product). `reuse`
    /// false takes the path before reuse (see `reuse`; B is then read as it is).
    /// `splitsColumns`: whether a product whose B oneDNN would read in place
    /// with a stride that thrashes the L1 cache runs as two (`columnSplit`).
    static func run(
        _ key: Key, a: UnsafeMutableRawPointer, b: UnsafeMutableRawPointer, c: UnsafeMutablePointer<Float>,
        packed: PackedWeight? = nil, bIsFloat: Bool = false, reuse: Bool = OneDNNMatmul.reuse,
        splitsColumns: Bool = OneDNNMatmul.splitsColumns
    ) -> Bool {
        guard let engine = state.engine else { return false }
        omp_set_num_threads(Int32(key.threads))
        guard reuse else { return runUnshared(key, engine: engine, a: a, b: b, c: c, splitsColumns: splitsColumns) }
        let context = ThreadContext.current(engine: engine)
        guard let stream = context.stream else { return false }
        func execute(_ primitive: Primitive, b: UnsafeMutableRawPointer, c: UnsafeMutablePointer<Float>) -> Bool {
            context.execute(primitive, engine: engine, a: a, b: b, c: c)
        }
        if let packed {
            let packedPrimitive = Self.packedPrimitive(for: key, engine: engine)
            if !Self.readsInPlace(key, packedPrimitive: packedPrimitive), let primitive = packedPrimitive, let desc = primitive.weightsDesc,
               let bPacked = packed.copy(for: desc, key: key, b: UnsafeRawPointer(b), sourceBF16: key.bf16 && !bIsFloat,
                                          engine: engine, stream: stream) {
                // A copy packed in plain rows (what oneDNN's AVX2 matmul asks
                // for) is read like any plain B, so it may need the split too.
                var plain = key
                plain.transB = false
                plain.ldb = primitive.packedRowStride
                if splitsColumns, plain.ldb > 0, let ran = runSplit(plain, a: a, b: bPacked, c: c, run: execute) {
                    return ran
                }
                return context.execute(primitive, engine: engine, a: a, b: bPacked, c: c)
            }
            // No packed copy (its layouts are taken): a Float32 B for a bf16
            // product must be rounded by the caller first.
            if key.bf16 && bIsFloat { return false }
        }
        if splitsColumns, let ran = runSplit(key, a: a, b: b, c: c, run: execute) { return ran }
        guard let primitive = primitive(for: key, engine: engine) else { return false }
        return execute(primitive, b: b, c: c)
    }

    /// Whether a product over a packed weight reads B where it is instead:
    /// when the layout oneDNN asks for is B as stored (f32 plain rows of B's
    /// own stride: its AVX2 matmul asks that of the backward's dY·W), a copy
    /// would hold the same bytes again, so B is read in place by the same
    /// kind of primitive and no memory is spent.
    static func readsInPlace(_ key: Key, packedPrimitive: Primitive?) -> Bool {
        !key.bf16 && !key.transB && packedPrimitive?.packedRowStride == key.ldb
    }

    /// `readsInPlace` for `key` (made with `packedB` false) on this CPU; false without oneDNN.
    static func readsPackedInPlace(_ key: Key) -> Bool {
        guard let engine = state.engine else { return false }
        return readsInPlace(key, packedPrimitive: packedPrimitive(for: key, engine: engine))
    }

    /// Whether `key`'s primitive with a packed B (`packedB`) reads B in the
    /// bf16 layout `NF4Tensor.dequantizeRowsBFloat16Blocked` writes (oneDNN's
    /// AVX-512 bf16 choice, checked field by field, not assumed); false
    /// without oneDNN, for f32, or for any other layout.
    static func readsBlockedBFloat16(_ key: Key) -> Bool {
        guard key.bf16, let engine = state.engine else { return false }
        guard let desc = packedPrimitive(for: key, engine: engine)?.weightsDesc else { return false }
        return withUnsafePointer(to: desc) { factsweep_is_bf16_vnni_layout($0, dnnl_dim_t(key.k), dnnl_dim_t(key.n)) } != 0
    }

    /// Runs `key`'s primitive with a packed B (`packedB`) on `b`, which the
    /// caller wrote in that primitive's layout (`readsBlockedBFloat16`);
    /// false when oneDNN has no such primitive or the call fails.
    static func runPrepacked(_ key: Key, a: UnsafeMutableRawPointer, b: UnsafeMutableRawPointer, c: UnsafeMutablePointer<Float>) -> Bool {
        guard let engine = state.engine else { return false }
        omp_set_num_threads(Int32(key.threads))
        guard let primitive = packedPrimitive(for: key, engine: engine) else { return false }
        return ThreadContext.current(engine: engine).execute(primitive, engine: engine, a: a, b: b, c: c)
    }

    /// The current packed copy in `packed` that `key`'s primitive with a
    /// packed B reads (a bf16 product, or an f32 one over a frozen Float32
    /// weight), for `runPrepacked`; nil when there is none yet, or the
    /// layout is plain rows (whose products may be split, as `run` does).
    static func currentPackedCopy(_ key: Key, in packed: PackedWeight) -> UnsafeMutableRawPointer? {
        guard let engine = state.engine, let primitive = packedPrimitive(for: key, engine: engine),
              primitive.packedRowStride == 0, let desc = primitive.weightsDesc else { return nil }
        return packed.currentCopy(for: desc, transB: key.transB)
    }

    /// Writes `packed`'s weight back in plain bf16 rows into `plain` (see
    /// `PackedWeight.unpack`); false without oneDNN or a current bf16 copy.
    static func unpack(_ packed: PackedWeight, into plain: UnsafeMutablePointer<UInt16>) -> Bool {
        guard let engine = state.engine, let stream = ThreadContext.current(engine: engine).stream else { return false }
        return packed.unpack(into: UnsafeMutableRawPointer(plain), bf16: true, engine: engine, stream: stream)
    }

    /// Writes `packed`'s weight back in plain Float32 rows into `plain`;
    /// false without oneDNN or a current Float32 copy.
    static func unpack(_ packed: PackedWeight, into plain: UnsafeMutablePointer<Float>) -> Bool {
        guard let engine = state.engine, let stream = ThreadContext.current(engine: engine).stream else { return false }
        return packed.unpack(into: UnsafeMutableRawPointer(plain), bf16: false, engine: engine, stream: stream)
    }

    /// The path before reuse: a stream and a scratchpad of its own per call.
    private static func runUnshared(
        _ key: Key, engine: dnnl_engine_t, a: UnsafeMutableRawPointer, b: UnsafeMutableRawPointer, c: UnsafeMutablePointer<Float>,
        splitsColumns: Bool
    ) -> Bool {
        var stream: dnnl_stream_t?
        guard dnnl_stream_create(&stream, engine, dnnl_stream_default_flags.rawValue) == dnnl_success, let stream else { return false }
        defer { dnnl_stream_destroy(stream) }
        func once(_ primitive: Primitive, b: UnsafeMutableRawPointer, c: UnsafeMutablePointer<Float>) -> Bool {
            let bytes = primitive.scratchpadBytes
            let scratchpad = bytes > 0 ? UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64) : nil
            defer { scratchpad?.deallocate() }
            return factsweep_matmul_execute(primitive.handle, engine, stream, a, b, c, scratchpad) == dnnl_success
        }
        if splitsColumns, let ran = runSplit(key, a: a, b: b, c: c, run: once) { return ran }
        guard let primitive = primitive(for: key, engine: engine) else { return false }
        return once(primitive, b: b, c: c)
    }

    // MARK: - Splitting a product whose B oneDNN's AVX2 sgemm reads in place

    /// Columns of C the first product of a split takes (`columnSplit`): 4
    /// floats put the second product's B 16 bytes into a 32-byte line.
    static let splitColumns = 4

    /// Whether this process splits such products: on a CPU whose oneDNN
    /// sgemm is its AVX/AVX2 one (below `avx512_core`, whose own rule sends
    /// these leading dimensions to its copying kernels), unless
    /// `FACTSWEEP_ONEDNN_SPLIT=off` (the benchmark's before/after).
    static let splitsColumns = hasAVX2Sgemm && ProcessInfo.processInfo.environment[splitEnvironmentKey]?.lowercased() != "off"

    /// Whether f32 products on the calling thread would make and read packed
    /// copies in oneDNN's blocked layouts (`gemmOnPackedCopy`): the engine
    /// is oneDNN, reuse is on, the precision is f32, and its matmul is not
    /// the AVX2 one (which packs in plain rows, read as any plain B).
    static var makesBlockedF32Copies: Bool {
        ProductPrecision.current == .f32 && MatmulEngine.current == .oneDNN && reuse && !hasAVX2Sgemm && isAvailable
    }

    /// Whether oneDNN's f32 products here run on its AVX/AVX2 sgemm (the
    /// one that reads such B in place, and packs B in plain rows).
    static let hasAVX2Sgemm = isAvailable
        && [dnnl_cpu_isa_avx, dnnl_cpu_isa_avx2, dnnl_cpu_isa_avx2_vnni].contains(dnnl_get_effective_cpu_isa())

    /// The environment variable that turns the split off (`off`).
    static let splitEnvironmentKey = "FACTSWEEP_ONEDNN_SPLIT"

    /// The two products `key` runs as, or nil when it runs whole.
    ///
    /// oneDNN 2.6's AVX2 sgemm takes its "no-copy" kernels for products of
    /// few rows (1/m + 1/n ≥ 0.0038 in `nocopy_checker_avx2`: m up to
    /// 1/(0.0038 − 1/n), ~300 rows at n = 2048, ~540 at 512), and those read
    /// a plain (not transposed) B in place,
    /// instead of copying a panel of it once, whenever B's address and row
    /// stride are multiples of 32 bytes (`jit_avx_gemm_f32.cpp`, its
    /// `FLAG`). When the row stride is also a multiple of 1 KiB (256 floats:
    /// the leading dimension oneDNN's AVX-512 rule calls bad and copies for),
    /// the rows of a panel map to a few of L1's 64 sets and evict each other,
    /// and the panel is read again for every 6 rows of A. That is the
    /// backward of every projection at Llama-3.2-1B's widths (2048, 8192) and
    /// SmolLM2's MLP (1536), and the forward over a packed base on AVX2
    /// (packed there means the transposed weight in plain rows). Measured
    /// on a 2-core Zen 3 (docs/benchmarks.md): 67×8192×2048 ran at 65–82
    /// GFLOP/s in place and 118–156 with B 4 bytes off its alignment.
    ///
    /// So the first `splitColumns` columns of C run as a product of their
    /// own (it keeps B's alignment and is read in place, but it is 4 columns
    /// wide: 2% of the time of the rest at 67×8192×2048), and the rest start
    /// `splitColumns` floats into B, off the 32-byte alignment, which sends
    /// oneDNN to its copying path. Each column of C is still one dot product
    /// per element; its sums round as oneDNN's kernels round them (not as the
    /// unsplit product's: last bits differ, within the f32 goldens).
    static func columnSplit(_ key: Key, b: UnsafeRawPointer) -> (strip: Key, rest: Key)? {
        guard !key.bf16, !key.transB, !key.packedB, key.n > 2 * splitColumns, key.m > 0, key.k > 0,
              1 / Double(key.m) + 1 / Double(key.n) >= 0.0038,
              key.ldb % 256 == 0, Int(bitPattern: b) % 32 == 0 else { return nil }
        var strip = key, rest = key
        strip.n = splitColumns
        rest.n = key.n - splitColumns
        return (strip, rest)
    }

    /// Runs `key` as its split's two products with `run` (primitive, B, C):
    /// nil, having run neither, when `columnSplit` keeps it whole or oneDNN
    /// has no primitive for one of the two (the whole product then runs as
    /// before). Should the second fail after the first ran, its columns run
    /// on OpenBLAS, so that no column is left unwritten or accumulated twice
    /// by a caller's fallback.
    static func runSplit(
        _ key: Key, a: UnsafeMutableRawPointer, b: UnsafeMutableRawPointer, c: UnsafeMutablePointer<Float>,
        run: (Primitive, UnsafeMutableRawPointer, UnsafeMutablePointer<Float>) -> Bool
    ) -> Bool? {
        guard let engine = state.engine, let split = columnSplit(key, b: UnsafeRawPointer(b)),
              let strip = primitive(for: split.strip, engine: engine),
              let rest = primitive(for: split.rest, engine: engine) else { return nil }
        guard run(strip, b, c) else { return false }
        let restB = b + splitColumns * MemoryLayout<Float>.stride, restC = c + splitColumns
        if run(rest, restB, restC) { return true }
        let r = split.rest
        sgemm(transA: r.transA, transB: false, m: r.m, n: r.n, k: r.k, alpha: r.alpha,
              a: a.assumingMemoryBound(to: Float.self), lda: r.lda, b: restB.assumingMemoryBound(to: Float.self), ldb: r.ldb,
              beta: r.beta, c: restC, ldc: r.ldc)
        return true
    }

    /// The primitive for `key` with B packed (`Key.packedB`), whatever `key` says of it.
    private static func packedPrimitive(for key: Key, engine: dnnl_engine_t) -> Primitive? {
        var packedKey = key
        packedKey.packedB = true
        return primitive(for: packedKey, engine: engine)
    }

    private static func primitive(for key: Key, engine: dnnl_engine_t) -> Primitive? {
        state.lock.lock()
        if let known = state.primitives[key] {
            state.lock.unlock()
            return known
        }
        state.lock.unlock()
        // oneDNN fixes a primitive's team size when it is made, from the
        // calling thread's OpenMP setting: make it for the key's threads,
        // whichever caller (a query like `readsBlockedBFloat16`, or `run`) comes first.
        omp_set_num_threads(Int32(key.threads))
        var made: dnnl_primitive_t?
        let status = factsweep_matmul_create(
            &made, engine, key.transA ? 1 : 0, key.transB ? 1 : 0, Int64(key.m), Int64(key.n), Int64(key.k),
            Int64(key.lda), Int64(key.ldb), Int64(key.ldc), key.alpha, key.beta, key.bf16 ? 1 : 0, key.packedB ? 1 : 0)
        let primitive = status == dnnl_success ? made.map { Primitive($0, packedB: key.packedB) } : nil
        state.lock.lock()
        defer { state.lock.unlock() }
        if let raced = state.primitives[key] {
            // Another thread made the same shape meanwhile: keep one.
            return raced
        }
        state.primitives[key] = primitive
        return primitive
    }

    /// One calling thread's stream, scratchpad and memory objects per
    /// primitive, made on its first product and kept for its life: a thread
    /// runs one product at a time, so none is shared, and no product
    /// allocates. (Primitives live as long as the process, so a primitive's
    /// identity never names another.)
    private final class ThreadContext {
        let stream: dnnl_stream_t?
        /// Products this thread has run (tests ask whether a path reached oneDNN).
        private(set) var executions = 0
        private var buffer: UnsafeMutableRawPointer?
        private var bufferBytes = 0
        private var memories: [ObjectIdentifier: UnsafeMutablePointer<factsweep_matmul_memories>] = [:]

        private init(engine: dnnl_engine_t) {
            var stream: dnnl_stream_t?
            self.stream = dnnl_stream_create(&stream, engine, dnnl_stream_default_flags.rawValue) == dnnl_success ? stream : nil
        }

        deinit {
            for kept in memories.values {
                factsweep_matmul_memories_destroy(kept)
                kept.deallocate()
            }
            if let stream { dnnl_stream_destroy(stream) }
            buffer?.deallocate()
        }

        /// Runs `primitive` on this thread's stream with its kept memory objects.
        func execute(_ primitive: Primitive, engine: dnnl_engine_t, a: UnsafeMutableRawPointer, b: UnsafeMutableRawPointer,
                     c: UnsafeMutablePointer<Float>) -> Bool {
            guard let stream else { return false }
            let kept: UnsafeMutablePointer<factsweep_matmul_memories>
            if let known = memories[ObjectIdentifier(primitive)] {
                kept = known
            } else {
                kept = .allocate(capacity: 1)
                kept.initialize(to: factsweep_matmul_memories())
                memories[ObjectIdentifier(primitive)] = kept
            }
            let scratchpad = scratchpad(bytes: primitive.scratchpadBytes)
            executions += 1
            return factsweep_matmul_execute_kept(primitive.handle, engine, stream, kept, a, b, c, scratchpad) == dnnl_success
        }

        private static let key: pthread_key_t = {
            var key = pthread_key_t()
            pthread_key_create(&key) { pointer in
                if let pointer { Unmanaged<ThreadContext>.fromOpaque(pointer).release() }
            }
            return key
        }()

        static func current(engine: dnnl_engine_t) -> ThreadContext {
            if let pointer = pthread_getspecific(key) { return Unmanaged<ThreadContext>.fromOpaque(pointer).takeUnretainedValue() }
            let context = ThreadContext(engine: engine)
            pthread_setspecific(key, Unmanaged.passRetained(context).toOpaque())
            return context
        }

        /// At least `bytes` of 64-byte aligned scratch (nil for none), grown as needed.
        func scratchpad(bytes: Int) -> UnsafeMutableRawPointer? {
            guard bytes > 0 else { return nil }
            if let buffer, bufferBytes >= bytes { return buffer }
            buffer?.deallocate()
            let size = (bytes + 4095) / 4096 * 4096
            buffer = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 64)
            bufferBytes = size
            return buffer
        }
    }
}

/// The packed copies of one frozen weight matrix: B reordered into the
/// blocked layout a oneDNN matmul primitive prefers (`dnnl_format_tag_any`),
/// made on the first product that reads it and reused by every later one,
/// instead of oneDNN re-blocking the plain matrix inside every call. Kept
/// beside the weight it copies (`BFloat16Matrix.packed`, the frozen dense
/// bases of adapter methods); one copy per layout asked for (the forward
/// reads W transposed, the backward plain: two layouts), except a layout
/// that is W as stored (f32 plain rows, oneDNN's AVX2 choice for the
/// backward), which `OneDNNMatmul.run` reads in place.
///
/// Whoever writes the weight must call `invalidate()` before the next
/// product, and never while products read it; for a weight whose plain rows
/// the copies may release (`plainRows`), inside a lease on them
/// (`ReleasablePlainRows.withRows`), which writes them back first and lets
/// no release come between. Weights trained in place get
/// none: in f32 each feeds one product per direction per step, so packing it
/// per step would be the same copy oneDNN makes inside that call; in bf16
/// full fine-tuning reads a plain bf16 rounding made once per step
/// (`BFloat16Matrix.init(rounding:)`), which measured 14% faster per epoch at
/// batch 1 than packing the forward's layout each step (docs/benchmarks.md).
public final class PackedWeight: @unchecked Sendable {
    private struct Copy {
        var desc: dnnl_memory_desc_t
        var transB: Bool
        /// B's shape as the product reads it (k × n) and the weight's row stride.
        var k: Int, n: Int, ldb: Int
        var buffer: UnsafeMutableRawPointer
        var bytes: Int
        /// False once the weight has changed: the buffer is kept and refilled by the next product.
        var current: Bool
    }

    /// Layouts kept at most, one per direction; a product asking for another runs unpacked.
    public let maximumCopies = 2

    private let lock = NSLock()
    private var copies: [Copy] = []

    /// The plain Float32 rows the copies are made from, when they may be
    /// released while both directions' copies are current (a model's
    /// projections: `LlamaModel.packsFrozenBases`); nil otherwise.
    let plainRows: ReleasablePlainRows?

    public init() { plainRows = nil }

    /// Copies of the frozen Float32 matrix at `rows` (`count` Floats, inside
    /// a buffer `LargeBuffer` mapped) whose plain rows are released once
    /// both directions' copies are current (`ReleasablePlainRows`).
    init(releasing rows: UnsafeMutablePointer<Float>, count: Int) {
        plainRows = ReleasablePlainRows(rows, count: count)
    }

    deinit { for copy in copies { LargeBuffer.deallocate(copy.buffer, byteCount: max(copy.bytes, 64)) } }

    /// Marks every packed copy stale (the weight has changed): the next
    /// product of each layout packs it again, into the same buffer. Internal:
    /// its callers (`LlamaModel`, `BFloat16Matrix`) take the lease on
    /// released plain rows it needs; nothing outside Core writes a weight.
    func invalidate() {
        lock.lock()
        defer { lock.unlock() }
        for index in copies.indices { copies[index].current = false }
    }

    /// Frees every copy and returns the bytes freed; the next product of each
    /// direction makes its copy again. Only while no product runs on this
    /// weight (a product reads its copy after `copy(for:)` returns, outside
    /// the lock), and, where the copies hold released plain rows, inside
    /// their lease (`LlamaModel.dropFloat32Copies`).
    func discardCopies() -> Int {
        lock.lock()
        defer { lock.unlock() }
        let bytes = copies.reduce(0) { $0 + $1.bytes }
        for copy in copies { LargeBuffer.deallocate(copy.buffer, byteCount: max(copy.bytes, 64)) }
        copies = []
        return bytes
    }

    /// Bytes the packed copies occupy.
    public var byteCount: Int {
        lock.lock()
        defer { lock.unlock() }
        return copies.reduce(0) { $0 + $1.bytes }
    }

    /// The copy of `b` (as `key` reads it) in layout `desc`, made now if none
    /// exists; nil when `maximumCopies` other layouts exist or the reorder fails.
    fileprivate func copy(
        for desc: dnnl_memory_desc_t, key: OneDNNMatmul.Key, b: UnsafeRawPointer, sourceBF16: Bool,
        engine: dnnl_engine_t, stream: dnnl_stream_t
    ) -> UnsafeMutableRawPointer? {
        lock.lock()
        defer { lock.unlock() }
        var wanted = desc
        func pack(into buffer: UnsafeMutableRawPointer) -> Bool {
            factsweep_reorder_weights(engine, stream, key.transB ? 1 : 0, Int64(key.k), Int64(key.n), Int64(key.ldb),
                                      sourceBF16 ? 1 : 0, UnsafeMutableRawPointer(mutating: b), &wanted, buffer, 0) == dnnl_success
        }
        for index in copies.indices where copies[index].transB == key.transB && dnnl_memory_desc_equal(&copies[index].desc, &wanted) != 0 {
            if !copies[index].current {
                guard pack(into: copies[index].buffer) else { return nil }
                copies[index].current = true
            }
            return copies[index].buffer
        }
        // One copy per direction: a product of another layout for a direction that has one runs
        // unpacked, so that the other direction's copy is always made, whichever ran first.
        guard copies.count < maximumCopies, !copies.contains(where: { $0.transB == key.transB }) else { return nil }
        let bytes = dnnl_memory_desc_get_size(&wanted)
        let buffer = LargeBuffer.allocate(byteCount: max(bytes, 64))
        guard pack(into: buffer) else {
            LargeBuffer.deallocate(buffer, byteCount: max(bytes, 64))
            return nil
        }
        copies.append(Copy(desc: wanted, transB: key.transB, k: key.k, n: key.n, ldb: key.ldb, buffer: buffer, bytes: bytes,
                           current: true))
        return buffer
    }

    /// The current copy in layout `desc` for products reading B transposed
    /// or not (`transB`), without making one; nil when there is none.
    fileprivate func currentCopy(for desc: dnnl_memory_desc_t, transB: Bool) -> UnsafeMutableRawPointer? {
        lock.lock()
        defer { lock.unlock() }
        var wanted = desc
        for var copy in copies where copy.current && copy.transB == transB && dnnl_memory_desc_equal(&copy.desc, &wanted) != 0 {
            return copy.buffer
        }
        return nil
    }

    /// Whether a current copy in a blocked layout (one that
    /// `OneDNNMatmul.currentPackedCopy` serves: not plain rows) exists for
    /// each direction, B read transposed (the forward's X · Wᵀ) and not (the
    /// backward's dY · W).
    var holdsBothDirections: Bool { holdsBothDirections(float32: false) }

    /// `holdsBothDirections`, counting only Float32 copies when `float32`
    /// (what a Float32 matrix's plain rows are written back from).
    func holdsBothDirections(float32: Bool) -> Bool {
        lock.lock()
        defer { lock.unlock() }
        let blocked = copies.filter { copy in
            copy.current && (!float32 || copy.desc.data_type == dnnl_f32)
                && withUnsafePointer(to: copy.desc) { factsweep_plain_row_stride($0) } == 0
        }
        return blocked.contains { $0.transB } && blocked.contains { !$0.transB }
    }

    /// Writes the weight back in plain rows (row-major, leading dimension
    /// the products' `ldb`; bf16 or Float32 as `bf16` says) into `plain`
    /// from a current copy of that type: the same values, as packing only
    /// moved them. False, writing nothing, when no such copy exists or the
    /// reorder fails.
    fileprivate func unpack(into plain: UnsafeMutableRawPointer, bf16: Bool, engine: dnnl_engine_t, stream: dnnl_stream_t) -> Bool {
        lock.lock()
        defer { lock.unlock() }
        let type = bf16 ? dnnl_bf16 : dnnl_f32
        guard let copy = copies.first(where: { $0.current && $0.desc.data_type == type }) else { return false }
        var desc = copy.desc
        return factsweep_reorder_weights(engine, stream, copy.transB ? 1 : 0, Int64(copy.k), Int64(copy.n), Int64(copy.ldb), bf16 ? 1 : 0,
                                         plain, &desc, copy.buffer, 1) == dnnl_success
    }
}
