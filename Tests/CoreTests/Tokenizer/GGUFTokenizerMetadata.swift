// GGUFTokenizerMetadata: a throwaway reader of the tokenizer key-values at the
// front of a GGUF file, so that tokenizer tests need not wait for (or depend on)
// the real GGUF loader. It reads only what the tests need.
import Foundation

/// The `tokenizer.*` metadata of a GGUF file.
struct GGUFTokenizerMetadata {
    var strings: [String: String] = [:]
    var integers: [String: Int] = [:]
    var booleans: [String: Bool] = [:]
    var stringArrays: [String: [String]] = [:]
    var integerArrays: [String: [Int32]] = [:]

    struct Malformed: Error, CustomStringConvertible {
        let description: String
    }

    init(url: URL) throws {
        let data = try Data(contentsOf: url, options: .alwaysMapped)
        var reader = Reader(data: data)
        guard try reader.bytes(4) == Data("GGUF".utf8) else { throw Malformed(description: "\(url.lastPathComponent): not GGUF") }
        let version: UInt32 = try reader.scalar()
        guard version >= 2 else { throw Malformed(description: "GGUF version \(version)") }
        _ = try reader.scalar() as UInt64  // tensor count
        let count: UInt64 = try reader.scalar()
        for _ in 0..<count {
            let key = try reader.string()
            let type: UInt32 = try reader.scalar()
            if type == 9 {
                let itemType: UInt32 = try reader.scalar()
                let n = Int(try reader.scalar() as UInt64)
                switch itemType {
                case 8: stringArrays[key] = try (0..<n).map { _ in try reader.string() }
                case 5: integerArrays[key] = try (0..<n).map { _ in try reader.scalar() as Int32 }
                default: for _ in 0..<n { try reader.skip(itemType) }
                }
            } else if type == 8 {
                strings[key] = try reader.string()
            } else if type == 7 {
                booleans[key] = try reader.scalar() as UInt8 != 0
            } else if type == 4 {
                integers[key] = Int(try reader.scalar() as UInt32)
            } else {
                try reader.skip(type)
            }
        }
    }

    private struct Reader {
        let data: Data
        var offset = 0

        mutating func bytes(_ n: Int) throws -> Data {
            guard offset + n <= data.count else { throw Malformed(description: "truncated at \(offset)") }
            defer { offset += n }
            return data.subdata(in: (data.startIndex + offset)..<(data.startIndex + offset + n))
        }

        mutating func scalar<T: FixedWidthInteger>() throws -> T {
            let raw = try bytes(MemoryLayout<T>.size)
            return T(littleEndian: raw.withUnsafeBytes { $0.loadUnaligned(as: T.self) })
        }

        mutating func string() throws -> String {
            let n = Int(try scalar() as UInt64)
            return String(decoding: try bytes(n), as: UTF8.self)
        }

        /// Skips one value of GGUF type `type` (arrays of arrays are not needed here).
        mutating func skip(_ type: UInt32) throws {
            let sizes: [UInt32: Int] = [0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8]
            if type == 8 { _ = try string(); return }
            guard let size = sizes[type] else { throw Malformed(description: "GGUF value type \(type) at \(offset)") }
            _ = try bytes(size)
        }
    }
}
