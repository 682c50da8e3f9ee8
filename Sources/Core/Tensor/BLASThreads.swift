// BLASThreads: OpenBLAS's thread count, one setting for the whole process —
// set where the process decides its threads, and lowered to one inside loops
// that are already split across threads.
import CBLAS
import Foundation

/// OpenBLAS's process-wide thread count. Single-threaded sections (the
/// per-head products inside `parallelFor`) may run at once on several threads
/// or nest; the count drops to one when the first opens and comes back when
/// the last closes, so one section never restores it under another. Whether
/// a thread is inside a section is its own state, not the process's (see
/// `threadsOutsideSections`).
public enum BLASThreads {
    private final class State: @unchecked Sendable {
        let condition = NSCondition()
        /// Sections open now.
        var open = 0
        /// The count to restore when the last section closes.
        var outside = 1
    }

    private static let state = State()

    /// OpenBLAS's count outside single-threaded sections (waiting for open
    /// ones to close, so never call it inside one).
    public static var current: Int {
        state.condition.lock()
        defer { state.condition.unlock() }
        while state.open > 0 { state.condition.wait() }
        return Int(openblas_get_num_threads())
    }

    /// Sets OpenBLAS's count for the process once any open sections close
    /// (never call it inside one).
    public static func set(_ threads: Int) {
        state.condition.lock()
        defer { state.condition.unlock() }
        while state.open > 0 { state.condition.wait() }
        openblas_set_num_threads(Int32(max(1, threads)))
    }

    /// The threads a product on the calling thread may use, or nil when the
    /// calling thread is inside a single-threaded section (its own, or the
    /// one the parallel loop it runs in was started from): there the products
    /// stay on single-threaded OpenBLAS, since an OpenMP team per calling
    /// thread would oversubscribe the cores. Outside one it is the process's
    /// count, the one `set` gave, even while another thread's section has
    /// lowered OpenBLAS's: a product's engine and team then depend only on
    /// the code that calls it, so trials side by side in one process compute
    /// what each computes alone.
    static var threadsOutsideSections: Int? {
        if isInSection { return nil }
        state.condition.lock()
        defer { state.condition.unlock() }
        return state.open > 0 ? state.outside : Int(openblas_get_num_threads())
    }

    /// Runs `body` with OpenBLAS on one thread.
    static func singleThreaded(_ body: () -> Void) {
        state.condition.lock()
        if state.open == 0 {
            state.outside = Int(openblas_get_num_threads())
            openblas_set_num_threads(1)
        }
        state.open += 1
        state.condition.unlock()
        defer {
            state.condition.lock()
            state.open -= 1
            if state.open == 0 {
                openblas_set_num_threads(Int32(state.outside))
                state.condition.broadcast()
            }
            state.condition.unlock()
        }
        markingSection(true, body)
    }

    private static let section = ThreadFlag()

    /// Whether the calling thread is inside a single-threaded section.
    static var isInSection: Bool { section.isSet }

    /// Runs `body` with the calling thread inside a section or not, restoring
    /// the previous state after; parallel loops carry their caller's state to
    /// their worker threads with it, as they carry its product precision.
    static func markingSection<Result>(_ inSection: Bool, _ body: () throws -> Result) rethrows -> Result {
        try section.run(inSection, body)
    }
}
