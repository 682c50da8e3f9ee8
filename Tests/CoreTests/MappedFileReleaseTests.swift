// MappedFileReleaseTests: a weight file's pages leave the process's memory
// once a tensor has been converted from them (so loading a model peaks at
// its arena, not its arena plus the file), and reading them again still
// gives the file's contents.
import Foundation
import Testing
import TestSupport
@testable import Core

@Suite struct MappedFileReleaseTests {
    /// Resident bytes of the mapping that starts at `base`, from
    /// /proc/self/smaps (Linux, where FactSweep runs); nil if not found.
    static func residentBytes(of base: UnsafeRawPointer) -> Int? {
        // Read to the end: /proc files report a size of 0.
        guard let handle = FileHandle(forReadingAtPath: "/proc/self/smaps"),
              let data = try? handle.readToEnd(), let smaps = String(data: data, encoding: .utf8) else { return nil }
        try? handle.close()
        let start = String(UInt(bitPattern: base), radix: 16)
        var inMapping = false
        for line in smaps.split(separator: "\n") {
            if let dash = line.firstIndex(of: "-"), line[..<dash].allSatisfy(\.isHexDigit), !line[..<dash].isEmpty {
                inMapping = line[..<dash].drop { $0 == "0" } == start[...].drop { $0 == "0" }
            } else if inMapping, line.hasPrefix("Rss:") {
                return line.split(separator: " ").compactMap { Int($0) }.first.map { $0 * 1024 }
            }
        }
        return nil
    }

    /// A safetensors file of one 4 MiB f32 tensor, its values known.
    static func writeTensorFile(_ dir: TemporaryDirectory) throws -> (URL, [Float]) {
        let values = (0..<(1 << 20)).map { Float($0 % 1000) * 0.5 - 7 }
        var writer = SafetensorsWriter()
        try writer.add("w", shape: [1024, 1024], values)
        let url = dir.file("w.safetensors")
        try writer.write(to: url)
        return (url, values)
    }

    @Test func releasedPagesLeaveMemoryAndReadBackUnchanged() throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanUp() }
        let (url, _) = try Self.writeTensorFile(dir)
        let file = try MappedFile(url: url)
        let base = try #require(file.bytes.baseAddress)
        var sum = 0
        for i in stride(from: 0, to: file.bytes.count, by: 512) { sum &+= Int(file.bytes[i]) }
        let before = try #require(Self.residentBytes(of: base), "the mapping is not in /proc/self/smaps")
        #expect(before >= file.bytes.count - MappedFile.pageSize, "reading every page should make the file resident: \(before)")
        file.release(0..<file.bytes.count)
        let after = try #require(Self.residentBytes(of: base))
        #expect(after == 0, "released pages still resident: \(after) bytes")
        var again = 0
        for i in stride(from: 0, to: file.bytes.count, by: 512) { again &+= Int(file.bytes[i]) }
        #expect(again == sum, "the file's contents changed after release")
        // A range that covers no page wholly drops nothing: the pages it
        // touches hold a neighbour's bytes too.
        let resident = try #require(Self.residentBytes(of: base))
        file.release(100..<(MappedFile.pageSize + 100))
        #expect(Self.residentBytes(of: base) == resident, "a partly covered page was dropped")
    }

    /// Reading a tensor into an arena releases its pages.
    @Test func readingATensorReleasesItsPages() throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanUp() }
        let (url, values) = try Self.writeTensorFile(dir)
        let file = try SafetensorsFile(url: url)
        let base = try #require(file.mapping.bytes.baseAddress)
        #expect(try file.floats("w") == values)
        let resident = try #require(Self.residentBytes(of: base), "the mapping is not in /proc/self/smaps")
        // What may stay: the page the tensor shares with the header.
        #expect(resident <= MappedFile.pageSize, "\(resident) bytes of a \(file.mapping.bytes.count)-byte file still resident")
        #expect(try file.floats("w") == values, "a second read sees the same values")
    }

    /// Reading a bf16 tensor's bits (AdamW's bf16 moments on resume) releases its pages too.
    @Test func readingBFloat16BitsReleasesItsPages() throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanUp() }
        let bits = (0..<(1 << 21)).map { UInt16(truncatingIfNeeded: $0 &* 40_503) }
        var writer = SafetensorsWriter()
        try bits.withUnsafeBufferPointer { try writer.add("m", shape: [2048, 1024], borrowingBFloat16Bits: $0) }
        let url = dir.file("m.safetensors")
        try writer.write(to: url)
        let file = try SafetensorsFile(url: url)
        let base = try #require(file.mapping.bytes.baseAddress)
        var read = [UInt16](repeating: 0, count: bits.count)
        try read.withUnsafeMutableBufferPointer { try file.readBFloat16Bits("m", into: $0) }
        #expect(read == bits)
        let resident = try #require(Self.residentBytes(of: base), "the mapping is not in /proc/self/smaps")
        #expect(resident <= MappedFile.pageSize, "\(resident) bytes of a \(file.mapping.bytes.count)-byte file still resident")
    }

    /// The GGUF loader releases a tensor's pages: the embedded SmolLM2's
    /// token embedding (Q8_0, 30 MB) leaves behind at most what lies beside
    /// its ends: the pages it shares with its neighbours, and what the
    /// kernel's fault-around (64 KiB windows) maps of theirs while it is read.
    @Test func readingAGGUFTensorReleasesItsPages() throws {
        let file = try SmolLM2GGUFTests.file()
        let base = try #require(file.mapping.bytes.baseAddress)
        let info = try #require(file.tensor("token_embd.weight"))
        let before = try #require(Self.residentBytes(of: base), "the mapping is not in /proc/self/smaps")
        var values = [Float](repeating: 0, count: info.elementCount)
        try values.withUnsafeMutableBufferPointer { try file.read(info, into: $0) }
        #expect(values.contains { $0 != 0 }, "the tensor read as zeros")
        let after = try #require(Self.residentBytes(of: base))
        #expect(after - before <= 2 * 64 * 1024 + 2 * MappedFile.pageSize,
                "\(after - before) bytes of a \(info.byteCount)-byte tensor still resident")
    }
}
