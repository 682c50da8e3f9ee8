// ComputeContextTests: making a context leaves OpenBLAS's process-wide thread
// count alone; `ComputeContext.forProcess` sets it, and single-threaded
// sections give it back.
import Testing
@testable import Core

@Suite struct ComputeContextTests {
    @Test func makingAContextLeavesOpenBLASThreadsAlone() {
        let original = BLASThreads.current
        defer { BLASThreads.set(original) }
        BLASThreads.set(3)
        _ = ComputeContext(threads: 1)
        _ = ComputeContext(threads: 2)
        #expect(BLASThreads.current == 3)
        let process = ComputeContext.forProcess(threads: 2)
        #expect(process.threads == 2 && BLASThreads.current == 2)
    }

    @Test func singleThreadedSectionsGiveTheCountBack() {
        let original = BLASThreads.current
        defer { BLASThreads.set(original) }
        BLASThreads.set(3)
        let context = ComputeContext(threads: 2)
        var ran = 0
        context.withSingleThreadedBLAS {
            context.parallelFor(4) { range in context.withSingleThreadedBLAS { _ = range } }
            ran += 1
        }
        #expect(ran == 1 && BLASThreads.current == 3)
    }
}
