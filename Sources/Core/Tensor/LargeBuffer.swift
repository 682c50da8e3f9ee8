// LargeBuffer: the allocation of the process's large, long-lived buffers
// (arenas, packed weight copies, bf16 copies) on transparent huge pages.
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Maps large buffers 2 MiB-aligned and asks the kernel to back them with
/// transparent huge pages (`madvise(MADV_HUGEPAGE)`; Debian's default THP mode
/// is `madvise`, which gives huge pages to nothing else). First touching a
/// model's memory in 4 KiB pages took about a third of a Llama-3.2-1B bench
/// child's wall time (docs/benchmarks.md, "Issue 13, twenty-third stop");
/// epochs were unchanged within the VM's noise. Only
/// whole 2 MiB blocks of a buffer become huge pages, so nothing is rounded
/// up to them.
///
/// Why its own `mmap` rather than the allocator's: once a process frees a
/// large block, glibc raises its mmap threshold (up to 32 MiB) and serves
/// later blocks of that size from its heap, whose pages were already
/// touched in 4 KiB pages, and advice would not change them.
///
/// `FACTSWEEP_HUGE_PAGES=off` keeps the ordinary allocator (a host whose
/// kernel stalls compacting memory for huge pages), as does a kernel whose
/// base page is not 4 KiB (its huge pages are not 2 MiB).
enum LargeBuffer {
    /// A huge page's size, and the smallest buffer mapped for them.
    static let hugePageBytes = 2 << 20

    static let usesHugePages = ProcessInfo.processInfo.environment["FACTSWEEP_HUGE_PAGES"]?.lowercased() != "off"
        && hasSmallPages

    /// Whether the kernel's base page is 4 KiB, as the mapping below assumes.
    private static let hasSmallPages: Bool = {
        #if os(Linux)
        sysconf(Int32(_SC_PAGESIZE)) == 4096
        #else
        false
        #endif
    }()

    /// Whether a buffer of `byteCount` bytes is mapped here (else the
    /// ordinary allocator's); never off Linux, where `hasSmallPages` is false.
    static func isMapped(_ byteCount: Int) -> Bool { usesHugePages && byteCount >= hugePageBytes }

    /// At least `byteCount` bytes (1 if 0), 64-byte aligned, uninitialised;
    /// free with `deallocate(_:byteCount:)` and the same count.
    static func allocate(byteCount: Int) -> UnsafeMutableRawPointer {
        let bytes = max(byteCount, 1)
        guard isMapped(bytes) else { return .allocate(byteCount: bytes, alignment: 64) }
        #if os(Linux)
        // Map a huge page more than needed, then unmap what lies before the first 2 MiB boundary and after the buffer.
        let length = pageRounded(bytes), span = length + hugePageBytes
        guard let raw = mmap(nil, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), raw != MAP_FAILED else {
            fatalError("out of memory: mapping \(span) bytes failed (errno \(errno))")
        }
        let start = UInt(bitPattern: raw), aligned = (start + UInt(hugePageBytes - 1)) & ~UInt(hugePageBytes - 1)
        let buffer = UnsafeMutableRawPointer(bitPattern: aligned)!
        if aligned > start { munmap(raw, Int(aligned - start)) }
        let tail = Int(start) + span - (Int(aligned) + length)
        if tail > 0 { munmap(buffer + length, tail) }
        // Advice only: a kernel without THP refuses it and the buffer keeps small pages.
        _ = madvise(buffer, length, MADV_HUGEPAGE)
        return buffer
        #else
        fatalError("unreachable")
        #endif
    }

    /// Frees a buffer from `allocate(byteCount:)`, given the same count.
    static func deallocate(_ buffer: UnsafeMutableRawPointer, byteCount: Int) {
        let bytes = max(byteCount, 1)
        guard isMapped(bytes) else { return buffer.deallocate() }
        #if os(Linux)
        munmap(buffer, pageRounded(bytes))
        #endif
    }

    private static func pageRounded(_ bytes: Int) -> Int { (bytes + 4095) & ~4095 }

    /// The whole 4 KiB pages of a span inside a buffer mapped here.
    struct Pages {
        let start: UnsafeMutableRawPointer, byteCount: Int
    }

    /// Hands the whole pages of `span` (inside a buffer `allocate` mapped)
    /// back to the kernel and makes them unreadable: the process's memory
    /// shrinks by them, and a read that did not bring them back first
    /// (`restore`) faults instead of finding zeros. Nil, changing nothing,
    /// when the span holds no whole page or the kernel refuses.
    static func release(_ span: UnsafeMutableRawBufferPointer) -> Pages? {
        #if os(Linux)
        guard let base = span.baseAddress else { return nil }
        let lo = (UInt(bitPattern: base) + 4095) & ~UInt(4095), hi = (UInt(bitPattern: base) + UInt(span.count)) & ~UInt(4095)
        guard hi > lo, let start = UnsafeMutableRawPointer(bitPattern: lo) else { return nil }
        let bytes = Int(hi - lo)
        guard mprotect(start, bytes, PROT_NONE) == 0 else { return nil }
        guard madvise(start, bytes, MADV_DONTNEED) == 0 else {
            precondition(mprotect(start, bytes, PROT_READ | PROT_WRITE) == 0, "cannot make released pages writable again (errno \(errno))")
            return nil
        }
        return Pages(start: start, byteCount: bytes)
        #else
        return nil
        #endif
    }

    /// Makes released pages readable and writable again; they hold zeros
    /// until the caller writes their values back.
    static func restore(_ pages: Pages) {
        #if os(Linux)
        precondition(mprotect(pages.start, pages.byteCount, PROT_READ | PROT_WRITE) == 0,
                     "cannot make released pages writable again (errno \(errno))")
        #endif
    }
}
