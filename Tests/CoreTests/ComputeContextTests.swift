// ComputeContextTests: making a context leaves OpenBLAS's process-wide thread
// count alone; `ComputeContext.forProcess` sets it, and single-threaded
// sections give it back. Parallel loops (on libgomp's team) run every index
// once, on several threads, nested and from several callers at once.
import Dispatch
import Foundation
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

    @Test func aLoopRunsEveryIndexOnceOnSeveralThreads() {
        let count = 1000
        let visits = UnsafeMutableBufferPointer<Int>.allocate(capacity: count)
        let threads = UnsafeMutableBufferPointer<UInt>.allocate(capacity: 2)
        defer { visits.deallocate(); threads.deallocate() }
        visits.initialize(repeating: 0)
        threads.initialize(repeating: 0)
        ComputeContext(threads: 2).parallelChunks(count) { chunk, range in
            threads[chunk] = UInt(pthread_self())
            for i in range { visits[i] += 1 }
        }
        #expect(visits.allSatisfy { $0 == 1 })
        #expect(threads[0] != 0 && threads[1] != 0 && threads[0] != threads[1])
    }

    @Test func nestedLoopsRunEveryPairOnce() {
        let outer = 7, inner = 33
        let visits = UnsafeMutableBufferPointer<Int>.allocate(capacity: outer * inner)
        defer { visits.deallocate() }
        visits.initialize(repeating: 0)
        let context = ComputeContext(threads: 2)
        context.parallelFor(outer) { rows in
            for row in rows {
                context.parallelFor(inner) { columns in
                    for column in columns { visits[row * inner + column] += 1 }
                }
            }
        }
        #expect(visits.allSatisfy { $0 == 1 })
    }

    @Test func loopsFromSeveralCallersAtOnceKeepTheirOwnWork() {
        let callers = 8, count = 4096
        let sums = UnsafeMutableBufferPointer<Int>.allocate(capacity: callers)
        defer { sums.deallocate() }
        sums.initialize(repeating: 0)
        let results = UncheckedSendable(sums)
        DispatchQueue.concurrentPerform(iterations: callers) { caller in
            let partial = UnsafeMutableBufferPointer<Int>.allocate(capacity: 2)
            defer { partial.deallocate() }
            partial.initialize(repeating: 0)
            for _ in 0..<50 {
                ComputeContext(threads: 2).parallelChunks(count) { chunk, range in
                    for i in range { partial[chunk] += i * (caller + 1) }
                }
            }
            results.value[caller] = partial[0] + partial[1]
        }
        for caller in 0..<callers {
            #expect(sums[caller] == 50 * (caller + 1) * count * (count - 1) / 2)
        }
    }
}
