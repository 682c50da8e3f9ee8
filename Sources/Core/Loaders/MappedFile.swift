// MappedFile: a read-only memory map of a whole weight file, and a
// bounds-checked cursor for parsing its headers.
//
// Weight files are hundreds of megabytes; mapping them lets tensors be
// converted straight from the page cache without a copy, and lets several
// readers share one file. Every read through `ByteCursor` is checked against the
// file size, so a truncated or lying header becomes a `LoadError`, not a crash.
import Foundation
import Trial

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A whole file mapped read-only into memory; unmapped when the last reference
/// goes away, so anything reading `bytes` must keep the `MappedFile` alive.
public final class MappedFile: @unchecked Sendable {
    // @unchecked: the mapping is read-only and never changes after init.

    /// The file's path, used in every error about it.
    public let path: String
    /// The file's contents. Valid while `self` is alive.
    public let bytes: UnsafeRawBufferPointer

    /// Maps `url` read-only; an empty file maps to an empty buffer.
    public init(url: URL) throws {
        path = url.path
        let fd = open(url.path, O_RDONLY)
        guard fd >= 0 else {
            throw LoadError.unreadable(file: url.path, reason: String(cString: strerror(errno)))
        }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else {
            throw LoadError.unreadable(file: url.path, reason: String(cString: strerror(errno)))
        }
        guard (info.st_mode & S_IFMT) == S_IFREG else {
            throw LoadError.unreadable(file: url.path, reason: "not a regular file")
        }
        let size = Int(info.st_size)
        if size == 0 {
            bytes = UnsafeRawBufferPointer(start: nil, count: 0)
            return
        }
        guard let base = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), base != MAP_FAILED else {
            throw LoadError.unreadable(file: url.path, reason: "mmap failed: \(String(cString: strerror(errno)))")
        }
        bytes = UnsafeRawBufferPointer(start: UnsafeRawPointer(base), count: size)
    }

    deinit {
        if let base = bytes.baseAddress {
            munmap(UnsafeMutableRawPointer(mutating: base), bytes.count)
        }
    }

    /// Drops the pages whose bytes of the file lie wholly inside `range`
    /// (byte offsets into the file) from this process's memory; a later read
    /// faults them in again from the file, so the contents seen never change.
    /// A loader calls it once a tensor has been converted into its arena:
    /// otherwise every page of the file stays mapped beside the arena it was
    /// copied into, and loading Llama-3.2-1B from bf16 safetensors peaked at
    /// the f32 arena plus the whole 2.4 GB file (docs/benchmarks.md,
    /// nineteenth stop).
    public func release(_ range: Range<Int>) {
        guard let base = bytes.baseAddress, range.lowerBound >= 0, range.upperBound <= bytes.count else { return }
        let page = Self.pageSize
        // The file's last page counts as wholly inside a range that runs to
        // the file's end: what lies beyond the end is no byte of the file.
        let start = (range.lowerBound + page - 1) / page * page
        let end = range.upperBound == bytes.count ? (bytes.count + page - 1) / page * page : range.upperBound / page * page
        guard end > start else { return }
        // MAP_PRIVATE and never written: the pages are the file's, and
        // MADV_DONTNEED only unmaps them from this process.
        _ = madvise(UnsafeMutableRawPointer(mutating: base + start), end - start, MADV_DONTNEED)
    }

    static let pageSize = max(1, Int(sysconf(Int32(_SC_PAGESIZE))))

    /// The file name without directories, for short messages.
    public var name: String { (path as NSString).lastPathComponent }
}

/// A little-endian reader over a byte buffer that refuses to read past its end.
/// `what` in each call names the field for the error message.
struct ByteCursor {
    let bytes: UnsafeRawBufferPointer
    let file: String
    private(set) var offset: Int

    init(_ bytes: UnsafeRawBufferPointer, file: String, offset: Int = 0) {
        self.bytes = bytes
        self.file = file
        self.offset = offset
    }

    /// Bytes left after the cursor.
    var remaining: Int { bytes.count - offset }

    /// Throws unless `count` more bytes exist.
    func require(_ count: Int, for what: String) throws {
        guard count >= 0, count <= remaining else {
            throw LoadError.truncated(
                file: file,
                reason: "\(what) needs \(count) bytes at offset \(offset) but the file has \(bytes.count) bytes")
        }
    }

    /// Reads a fixed-width little-endian integer.
    mutating func read<T: FixedWidthInteger>(_: T.Type, _ what: String) throws -> T {
        try require(MemoryLayout<T>.size, for: what)
        let v = bytes.loadUnaligned(fromByteOffset: offset, as: T.self)
        offset += MemoryLayout<T>.size
        return T(littleEndian: v)
    }

    /// Reads a little-endian unsigned 64-bit count and checks it fits in `Int`.
    mutating func readCount(_ what: String) throws -> Int {
        let v = try read(UInt64.self, what)
        guard v <= UInt64(Int.max) else {
            throw LoadError.malformed(file: file, reason: "\(what) is \(v), which is absurd")
        }
        return Int(v)
    }

    /// Returns the next `count` bytes and advances past them.
    mutating func take(_ count: Int, _ what: String) throws -> UnsafeRawBufferPointer {
        try require(count, for: what)
        let slice = UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + count)])
        offset += count
        return slice
    }

    /// Moves the cursor forward to the next multiple of `alignment`.
    mutating func align(to alignment: Int) {
        let rem = offset % alignment
        if rem != 0 { offset += alignment - rem }
    }
}
