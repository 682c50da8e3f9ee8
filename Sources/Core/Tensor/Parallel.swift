// Parallel: splitting the non-BLAS ops across the configured number of threads,
// on the OpenMP team that runs oneDNN's products.
import CDNNL

/// How many threads the core may use. Workers on one host split the cores, so
/// this is a setting, never `ProcessInfo.activeProcessorCount`.
///
/// Making a context touches nothing else: OpenBLAS's thread count belongs to
/// the process and is set by `forProcess(threads:)` alone.
public struct ComputeContext: Sendable {
    public let threads: Int

    public init(threads: Int) {
        self.threads = max(1, threads)
    }

    /// The context a process runs with, and OpenBLAS set to the same number
    /// of threads for its large products. Called once, where a process decides
    /// its threads (a command, a worker); helpers make plain contexts.
    public static func forProcess(threads: Int) -> ComputeContext {
        let context = ComputeContext(threads: threads)
        BLASThreads.set(context.threads)
        return context
    }

    /// Runs `body(range)` over `0..<count` split into at most `threads` contiguous
    /// chunks, in parallel. Work smaller than `minimumPerThread` runs inline.
    @inline(__always)
    public func parallelFor(_ count: Int, minimumPerThread: Int = 1, _ body: (Range<Int>) -> Void) {
        let chunks = min(threads, max(1, count / max(1, minimumPerThread)))
        if chunks <= 1 {
            body(0..<count)
            return
        }
        // Worker threads multiply in the caller's precision (and kernels) and,
        // inside its single-threaded section, on single-threaded OpenBLAS as it does.
        let products = ProductPrecision.setting, inSection = BLASThreads.isInSection
        runChunks(chunks) { c in
            let lo = count * c / chunks, hi = count * (c + 1) / chunks
            if lo < hi { BLASThreads.markingSection(inSection) { ProductPrecision.run(products) { body(lo..<hi) } } }
        }
    }

    /// Like `parallelFor` but tells the body which chunk it runs, so that it can
    /// use per-thread scratch space; `chunk < threads`.
    public func parallelChunks(_ count: Int, _ body: (_ chunk: Int, Range<Int>) -> Void) {
        let chunks = min(threads, count)
        if chunks <= 1 {
            body(0, 0..<count)
            return
        }
        let products = ProductPrecision.setting, inSection = BLASThreads.isInSection
        runChunks(chunks) { c in
            let lo = count * c / chunks, hi = count * (c + 1) / chunks
            if lo < hi { BLASThreads.markingSection(inSection) { ProductPrecision.run(products) { body(c, lo..<hi) } } }
        }
    }
}

extension ComputeContext {
    /// Runs `body` with OpenBLAS limited to one thread: inside loops that are
    /// already split across threads, small per-head sgemm calls must not each
    /// spawn their own.
    public func withSingleThreadedBLAS(_ body: () -> Void) {
        if threads == 1 { return body() }
        BLASThreads.singleThreaded(body)
    }
}

/// Runs `chunk(c)` for c in 0..<chunks on libgomp's team, the threads that
/// run oneDNN's products. One pool for both: with a second one (the loops
/// on GCD) every switch between a product and a loop woke the other pool's
/// thread — thousands of wake-ups a step — and a thread of one pool left
/// spinning took the core the other needed (docs/benchmarks.md, "Issue 13,
/// eleventh stop").
private func runChunks(_ chunks: Int, _ chunk: (Int) -> Void) {
    // libgomp hands each member one pointer: the address of the closure,
    // valid for the call, so a loop allocates nothing.
    withoutActuallyEscaping(chunk) { chunk in
        withUnsafePointer(to: chunk) { pointer in
            factsweep_team_run(chunks, { context, c in
                context!.assumingMemoryBound(to: ((Int) -> Void).self).pointee(Int(c))
            }, UnsafeMutableRawPointer(mutating: pointer))
        }
    }
}

/// A value handed to concurrent workers that the caller has made safe to
/// share (disjoint writes, read-only memory).
struct UncheckedSendable<Value>: @unchecked Sendable {
    let value: Value
    init(_ value: Value) { self.value = value }
}
