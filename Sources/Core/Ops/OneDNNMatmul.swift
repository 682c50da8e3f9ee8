// OneDNNMatmul: row-major products through oneDNN's matmul primitive, one
// primitive per shape created on first use and kept for the process.
import CDNNL
import Foundation

/// oneDNN's CPU engine and the primitives made on it.
enum OneDNNMatmul {
    /// What makes one primitive: the product's shape and layout, its alpha
    /// and beta (baked in as output scale and sum post-op), the input type and
    /// the thread count (oneDNN picks its blocking for the threads it has).
    struct Key: Hashable {
        var transA: Bool, transB: Bool
        var m: Int, n: Int, k: Int, lda: Int, ldb: Int, ldc: Int
        var alpha: Float, beta: Float
        var bf16: Bool
        var threads: Int
    }

    private final class State: @unchecked Sendable {
        let engine: dnnl_engine_t?
        let lock = NSLock()
        /// nil for a shape oneDNN refused (it then runs on OpenBLAS).
        var primitives: [Key: dnnl_primitive_t?] = [:]

        init() {
            var engine: dnnl_engine_t?
            self.engine = dnnl_engine_create(&engine, dnnl_cpu, 0) == dnnl_success ? engine : nil
        }
    }

    private static let state = State()

    /// Whether oneDNN's CPU engine could be created.
    static var isAvailable: Bool { state.engine != nil }

    /// How many primitives exist (one per distinct shape seen).
    static var primitiveCount: Int {
        state.lock.lock()
        defer { state.lock.unlock() }
        return state.primitives.values.filter { $0 != nil }.count
    }

    /// Runs C = alpha·op(A)·op(B) + beta·C on `threads` OpenMP threads; false
    /// when oneDNN has no primitive for it (the caller then uses OpenBLAS).
    static func run(
        _ key: Key, a: UnsafeMutableRawPointer, b: UnsafeMutableRawPointer, c: UnsafeMutablePointer<Float>
    ) -> Bool {
        guard let engine = state.engine else { return false }
        omp_set_num_threads(Int32(key.threads))
        guard let primitive = primitive(for: key, engine: engine) else { return false }
        return factsweep_matmul_execute(primitive, engine, a, b, c) == dnnl_success
    }

    private static func primitive(for key: Key, engine: dnnl_engine_t) -> dnnl_primitive_t? {
        state.lock.lock()
        if let known = state.primitives[key] {
            state.lock.unlock()
            return known
        }
        state.lock.unlock()
        var made: dnnl_primitive_t?
        let status = factsweep_matmul_create(
            &made, engine, key.transA ? 1 : 0, key.transB ? 1 : 0, Int64(key.m), Int64(key.n), Int64(key.k),
            Int64(key.lda), Int64(key.ldb), Int64(key.ldc), key.alpha, key.beta, key.bf16 ? 1 : 0)
        let primitive = status == dnnl_success ? made : nil
        state.lock.lock()
        defer { state.lock.unlock() }
        if let raced = state.primitives[key] {
            // Another thread made the same shape meanwhile: keep one.
            if let primitive { dnnl_primitive_destroy(primitive) }
            return raced
        }
        state.primitives[key] = primitive
        return primitive
    }
}
