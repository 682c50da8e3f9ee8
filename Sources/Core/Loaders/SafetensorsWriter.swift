// SafetensorsWriter: writes named Float32 / bf16 / Int32 tensors and string metadata
// as a `.safetensors` file, for checkpoints and golden files.
//
// The file is written to a temporary name beside the destination and renamed
// into place, so a reader never sees a half-written checkpoint and a crash
// leaves the previous one intact.
import Foundation
import Trial

#if canImport(Glibc)
import Glibc
private let posixWrite = Glibc.write
#elseif canImport(Darwin)
import Darwin
private let posixWrite = Darwin.write
#endif

/// Collects tensors, then writes them as one safetensors file.
public struct SafetensorsWriter: Sendable {
    // @unchecked: a borrowed buffer is the caller's, valid until `write` (see the `borrowing` adds).
    private enum Values: @unchecked Sendable {
        case float32([Float])
        case int32([Int32])
        /// Bytes the caller keeps valid until `write` (a checkpoint's arenas,
        /// which are too large to copy: 10 GB at 1B scale).
        case borrowed(UnsafeRawBufferPointer, SafetensorsDType)

        var dtype: SafetensorsDType {
            switch self {
            case .float32: .f32
            case .int32: .i32
            case let .borrowed(_, dtype): dtype
            }
        }
        var count: Int {
            switch self {
            case let .float32(v): v.count
            case let .int32(v): v.count
            case let .borrowed(bytes, dtype): bytes.count / dtype.byteCount
            }
        }
    }

    private var entries: [(name: String, shape: [Int], values: Values)] = []
    /// Strings stored in the header's `__metadata__`.
    public var metadata: [String: String] = [:]

    public init(metadata: [String: String] = [:]) {
        self.metadata = metadata
    }

    /// Adds a Float32 tensor; `values.count` must equal the product of `shape`.
    public mutating func add(_ name: String, shape: [Int], _ values: [Float]) throws {
        try add(name, shape: shape, .float32(values))
    }

    /// Adds a Float32 tensor copied from a buffer (a slice of a parameter arena).
    public mutating func add(_ name: String, shape: [Int], _ values: UnsafeBufferPointer<Float>) throws {
        try add(name, shape: shape, .float32(Array(values)))
    }

    /// Adds a Float32 tensor without copying it: `values` must stay valid
    /// and unchanged until `write` returns.
    public mutating func add(_ name: String, shape: [Int], borrowing values: UnsafeBufferPointer<Float>) throws {
        try add(name, shape: shape, .borrowed(UnsafeRawBufferPointer(values), .f32))
    }

    /// Adds a bf16 tensor given as its bits (AdamW's bf16 moments) without
    /// copying it: `values` must stay valid and unchanged until `write` returns.
    public mutating func add(_ name: String, shape: [Int], borrowingBFloat16Bits values: UnsafeBufferPointer<UInt16>) throws {
        try add(name, shape: shape, .borrowed(UnsafeRawBufferPointer(values), .bf16))
    }

    /// Adds an Int32 tensor (token ids, step counters).
    public mutating func add(_ name: String, shape: [Int], _ values: [Int32]) throws {
        try add(name, shape: shape, .int32(values))
    }

    private mutating func add(_ name: String, shape: [Int], _ values: Values) throws {
        guard name != "__metadata__", !entries.contains(where: { $0.name == name }) else {
            throw LoadError.malformed(file: "safetensors writer", reason: "tensor name \(name) is reserved or already added")
        }
        guard shape.allSatisfy({ $0 >= 0 }), shape.reduce(1, *) == values.count else {
            throw LoadError.shapeMismatch(file: "safetensors writer", tensor: name, expected: shape, found: [values.count])
        }
        entries.append((name, shape, values))
    }

    /// Writes every tensor added so far to `url`, atomically replacing any existing file.
    public func write(to url: URL) throws {
        let header = try headerBytes()
        let directory = url.deletingLastPathComponent()
        let temporary = directory.appendingPathComponent(".\(url.lastPathComponent).\(UUID().uuidString).tmp")
        let fd = open(temporary.path, O_WRONLY | O_CREAT | O_EXCL, 0o644)
        guard fd >= 0 else {
            throw LoadError.unwritable(file: url.path, reason: "cannot create \(temporary.lastPathComponent): \(String(cString: strerror(errno)))")
        }
        var committed = false
        defer {
            if !committed { unlink(temporary.path) }
        }
        do {
            defer { close(fd) }
            var length = UInt64(header.count).littleEndian
            try withUnsafeBytes(of: &length) { try Self.writeAll(fd, $0, url) }
            try header.withUnsafeBytes { try Self.writeAll(fd, $0, url) }
            for entry in entries {
                switch entry.values {
                case let .float32(v): try v.withUnsafeBytes { try Self.writeAll(fd, $0, url) }
                case let .borrowed(bytes, _): try Self.writeAll(fd, bytes, url)
                case let .int32(v): try v.withUnsafeBytes { try Self.writeAll(fd, $0, url) }
                }
            }
            guard fsync(fd) == 0 else {
                throw LoadError.unwritable(file: url.path, reason: "fsync failed: \(String(cString: strerror(errno)))")
            }
        }
        guard rename(temporary.path, url.path) == 0 else {
            throw LoadError.unwritable(file: url.path, reason: "cannot rename into place: \(String(cString: strerror(errno)))")
        }
        committed = true
    }

    /// The JSON header, padded with spaces to a multiple of 8 bytes so that
    /// the data that follows stays aligned, as the reference writer does.
    private func headerBytes() throws -> Data {
        var header: [String: Any] = [:]
        var offset = 0
        for entry in entries {
            let bytes = entry.values.count * entry.values.dtype.byteCount
            header[entry.name] = [
                "dtype": entry.values.dtype.rawValue, "shape": entry.shape, "data_offsets": [offset, offset + bytes],
            ] as [String: Any]
            offset += bytes
        }
        if !metadata.isEmpty { header["__metadata__"] = metadata }
        var data = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
        let padding = (8 - data.count % 8) % 8
        data.append(contentsOf: [UInt8](repeating: 0x20, count: padding))
        return data
    }

    private static func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, _ url: URL) throws {
        var done = 0
        while done < bytes.count {
            guard let base = bytes.baseAddress else { return }
            let n = posixWrite(fd, base + done, bytes.count - done)
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else {
                throw LoadError.unwritable(file: url.path, reason: "write failed: \(String(cString: strerror(errno)))")
            }
            done += n
        }
    }
}
