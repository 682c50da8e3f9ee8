// LargeBufferTests: large arenas, packed copies and bf16 copies are advised
// onto transparent huge pages (`LargeBuffer`), and get them where the kernel
// offers them; small ones keep the ordinary allocator. Linux only: other
// systems have no transparent huge pages, and `LargeBuffer` maps nothing there.
#if os(Linux)
import Foundation
import Testing
import TestSupport
@testable import Core

@Suite struct LargeBufferTests {
    /// The smaps entry of the mapping that holds `address`: its VmFlags and its AnonHugePages in kB.
    static func mapping(holding address: UnsafeRawPointer) throws -> (flags: [String], hugeKB: Int) {
        // Read to the end (procfs reports a size of 0, which some readers stop at).
        let handle = try FileHandle(forReadingFrom: URL(fileURLWithPath: "/proc/self/smaps"))
        defer { try? handle.close() }
        let text = String(decoding: try handle.readToEnd() ?? Data(), as: UTF8.self)
        let target = UInt(bitPattern: address)
        var inside = false, hugeKB = 0
        for line in text.split(separator: "\n") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            if let range = fields.first, range.contains("-"), !range.hasSuffix(":") {
                let bounds = range.split(separator: "-").compactMap { UInt($0, radix: 16) }
                inside = bounds.count == 2 && bounds[0] <= target && target < bounds[1]
            } else if inside, fields.first == "AnonHugePages:", fields.count > 1 {
                hugeKB = Int(fields[1]) ?? 0
            } else if inside, fields.first == "VmFlags:" {
                return (fields.dropFirst().map(String.init), hugeKB)
            }
        }
        throw SmapsError("no mapping in /proc/self/smaps (\(text.utf8.count) bytes) holds \(address)")
    }

    struct SmapsError: Error, CustomStringConvertible {
        let description: String
        init(_ description: String) { self.description = description }
    }

    /// The kernel's THP mode, e.g. "madvise" (the bracketed word of the sysfs file).
    static var transparentHugePageMode: String? {
        guard let text = try? String(contentsOfFile: "/sys/kernel/mm/transparent_hugepage/enabled", encoding: .utf8),
              let open = text.firstIndex(of: "["), let close = text.firstIndex(of: "]") else { return nil }
        return String(text[text.index(after: open)..<close])
    }

    @Test func largeArenaIsAdvisedOntoHugePages() throws {
        try #require(LargeBuffer.usesHugePages, "FACTSWEEP_HUGE_PAGES=off is set, or the base page is not 4 KiB")
        let mode = try #require(Self.transparentHugePageMode, "this kernel has no transparent huge pages (/sys/kernel/mm/transparent_hugepage)")
        // Large blocks freed first: glibc's allocator would serve the next from its heap, already touched in small pages.
        for _ in 0..<3 { _ = FloatArena(capacity: 6 << 20) }
        // 32 MiB, zeroed (so touched) by the arena's initialiser.
        let arena = FloatArena(capacity: 8 << 20)
        #expect(Int(bitPattern: arena.base) % LargeBuffer.hugePageBytes == 0, "a large arena is not 2 MiB-aligned")
        let large = try Self.mapping(holding: arena.base)
        #expect(large.flags.contains("hg"), "the arena's mapping was not advised (VmFlags \(large.flags))")
        if mode != "never" {
            // At least one of its sixteen 2 MiB blocks on a huge page (the kernel may find fewer when memory is fragmented).
            #expect(large.hugeKB >= 2048, "THP mode \(mode), but none of the arena's 32 MiB is on huge pages")
            print("LargeBufferTests: THP mode \(mode), \(large.hugeKB) kB of a 32 MiB arena on huge pages")
        }
        // A small arena is not advised: the advice covers whole 2 MiB blocks only.
        let small = FloatArena(capacity: 1024)
        #expect(try !Self.mapping(holding: small.base).flags.contains("hg"), "a small arena's mapping was advised")
    }

    /// The bf16 copy of a large matrix goes through the same allocation.
    @Test func largeBFloat16CopyIsAdvised() throws {
        try #require(LargeBuffer.usesHugePages, "FACTSWEEP_HUGE_PAGES=off is set, or the base page is not 4 KiB")
        let rows = 2048, columns = 1024
        let source = FloatArena(capacity: rows * columns)
        let matrix = BFloat16Matrix(source.base, rows: rows, columns: columns, context: ComputeContext(threads: 1))
        #expect(Int(bitPattern: matrix.base) % LargeBuffer.hugePageBytes == 0)
        #expect(try Self.mapping(holding: matrix.base).flags.contains("hg"))
    }
}
#endif
