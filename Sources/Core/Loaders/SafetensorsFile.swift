// SafetensorsFile: a memory-mapped `.safetensors` file: its JSON header, its
// `__metadata__` strings, and Float or integer conversion of its tensors.
//
// Layout: header length N (u64, little-endian), N bytes of JSON mapping each
// tensor name to {dtype, shape, data_offsets: [begin, end]} relative to the end
// of the header, then the data. Offsets are checked against the file size and
// byte counts against shapes before any read. Hosts are assumed little-endian.
import Foundation
import Trial

/// A safetensors element type.
public enum SafetensorsDType: String, Sendable, CaseIterable {
    case f64 = "F64", f32 = "F32", f16 = "F16", bf16 = "BF16"
    case i64 = "I64", i32 = "I32", i16 = "I16", i8 = "I8", u8 = "U8", bool = "BOOL"

    /// Bytes per element.
    public var byteCount: Int {
        switch self {
        case .f64, .i64: 8
        case .f32, .i32: 4
        case .f16, .bf16, .i16: 2
        case .i8, .u8, .bool: 1
        }
    }
}

/// One tensor's entry in a safetensors header.
public struct SafetensorsTensorInfo: Sendable, Equatable {
    public let name: String
    public let dtype: SafetensorsDType
    /// PyTorch order, outermost first.
    public let shape: [Int]
    /// Absolute offset of the data in the file.
    public let offset: Int
    public let byteCount: Int

    public var elementCount: Int { shape.reduce(1, *) }
}

/// A parsed, memory-mapped safetensors file; also a `TensorSource` when its
/// tensors carry Hugging Face names.
public final class SafetensorsFile: TensorSource {
    /// Headers larger than this are refused as corrupt (safetensors' own limit).
    public static let maximumHeaderBytes = 100_000_000

    public let url: URL
    /// The `__metadata__` string map, empty if absent.
    public let metadata: [String: String]
    /// Tensor infos in data order.
    public let tensors: [SafetensorsTensorInfo]

    let mapping: MappedFile
    private let indexByName: [String: Int]

    /// Maps and parses the file at `url`.
    public init(url: URL) throws {
        let mapping = try MappedFile(url: url)
        let file = mapping.path
        var cursor = ByteCursor(mapping.bytes, file: file)
        let headerLength = try cursor.readCount("header length")
        guard headerLength <= Self.maximumHeaderBytes else {
            throw LoadError.malformed(file: file, reason: "header length \(headerLength) is absurd; not a safetensors file?")
        }
        let headerBytes = try cursor.take(headerLength, "JSON header")
        let dataStart = cursor.offset
        let dataSize = cursor.remaining

        guard let json = try? JSONSerialization.jsonObject(with: Data(headerBytes)),
              let header = json as? [String: Any] else {
            throw LoadError.malformed(file: file, reason: "header is not a JSON object; not a safetensors file?")
        }
        var metadata: [String: String] = [:]
        if let raw = header["__metadata__"] {
            guard let strings = raw as? [String: String] else {
                throw LoadError.malformed(file: file, reason: "__metadata__ must map strings to strings")
            }
            metadata = strings
        }
        var tensors: [SafetensorsTensorInfo] = []
        for (name, entry) in header where name != "__metadata__" {
            tensors.append(try Self.parseEntry(name: name, entry: entry, file: file, dataStart: dataStart, dataSize: dataSize))
        }
        tensors.sort { ($0.offset, $0.name) < ($1.offset, $1.name) }
        try refuseOverlappingData(tensors, file: file)

        self.url = URL(fileURLWithPath: file)
        self.metadata = metadata
        self.tensors = tensors
        self.mapping = mapping
        self.indexByName = Dictionary(uniqueKeysWithValues: tensors.enumerated().map { ($1.name, $0) })
    }

    private static func parseEntry(
        name: String, entry: Any, file: String, dataStart: Int, dataSize: Int
    ) throws -> SafetensorsTensorInfo {
        func bad(_ why: String) -> LoadError { .malformed(file: file, reason: "tensor \(name): \(why)") }
        guard let fields = entry as? [String: Any] else { throw bad("header entry is not an object") }
        guard let dtypeName = fields["dtype"] as? String else { throw bad("missing dtype") }
        guard let dtype = SafetensorsDType(rawValue: dtypeName) else {
            throw LoadError.unsupportedType(file: file, tensor: name, type: dtypeName)
        }
        guard let shape = (fields["shape"] as? [Any])?.compactMap({ ($0 as? NSNumber)?.intValue }),
              shape.count == (fields["shape"] as? [Any])?.count, shape.allSatisfy({ $0 >= 0 }) else {
            throw bad("shape must be a list of non-negative integers")
        }
        guard let offsets = (fields["data_offsets"] as? [Any])?.compactMap({ ($0 as? NSNumber)?.intValue }),
              offsets.count == 2, offsets[0] >= 0, offsets[0] <= offsets[1] else {
            throw bad("data_offsets must be [begin, end] with begin <= end")
        }
        guard offsets[1] <= dataSize else {
            throw LoadError.truncated(
                file: file, reason: "tensor \(name) data ends at \(offsets[1]) but only \(dataSize) data bytes exist")
        }
        var elements = 1
        for d in shape {
            let (p, overflow) = elements.multipliedReportingOverflow(by: d)
            guard !overflow else { throw bad("shape \(shape) overflows") }
            elements = p
        }
        let byteCount = offsets[1] - offsets[0]
        let (expected, overflow) = elements.multipliedReportingOverflow(by: dtype.byteCount)
        guard !overflow, expected == byteCount else {
            // The product is shown only when it did not overflow: computing it again would trap.
            let needed = overflow ? "more than \(Int.max)" : "\(expected)"
            throw bad("shape \(shape) of \(dtypeName) needs \(needed) bytes but data_offsets span \(byteCount)")
        }
        return SafetensorsTensorInfo(name: name, dtype: dtype, shape: shape, offset: dataStart + offsets[0], byteCount: byteCount)
    }

    /// The info of tensor `name`.
    public func tensor(_ name: String) -> SafetensorsTensorInfo? {
        indexByName[name].map { tensors[$0] }
    }

    /// The raw bytes of a tensor; valid while this file is alive.
    public func data(of tensor: SafetensorsTensorInfo) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: mapping.bytes[tensor.offset..<(tensor.offset + tensor.byteCount)])
    }

    /// Reads an integer tensor (I64, I32, I16, I8, U8, BOOL) as `Int`s.
    public func ints(_ name: String) throws -> [Int] {
        let info = try require(name)
        let raw = data(of: info)
        let n = info.elementCount
        switch info.dtype {
        case .i64: return (0..<n).map { Int(Int64(littleEndian: raw.loadUnaligned(fromByteOffset: 8 * $0, as: Int64.self))) }
        case .i32: return (0..<n).map { Int(Int32(littleEndian: raw.loadUnaligned(fromByteOffset: 4 * $0, as: Int32.self))) }
        case .i16: return (0..<n).map { Int(Int16(littleEndian: raw.loadUnaligned(fromByteOffset: 2 * $0, as: Int16.self))) }
        case .i8: return (0..<n).map { Int(Int8(bitPattern: raw[$0])) }
        case .u8, .bool: return (0..<n).map { Int(raw[$0]) }
        case .f64, .f32, .f16, .bf16:
            throw LoadError.unsupportedType(file: path, tensor: name, type: "\(info.dtype.rawValue) (an integer tensor was expected)")
        }
    }

    /// Reads a bf16 tensor's bits as they are stored (AdamW's bf16 moments);
    /// any other dtype is refused.
    public func readBFloat16Bits(_ name: String, into destination: UnsafeMutableBufferPointer<UInt16>) throws {
        let info = try require(name)
        guard info.dtype == .bf16 else {
            throw LoadError.unsupportedType(file: path, tensor: name, type: "\(info.dtype.rawValue) (a BF16 tensor was expected)")
        }
        guard destination.count == info.elementCount else {
            throw LoadError.shapeMismatch(file: path, tensor: name, expected: info.shape, found: [destination.count])
        }
        let raw = data(of: info)
        for i in 0..<destination.count {
            destination[i] = UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))
        }
        // Copied: as in `read`, its file pages need not stay (a resumed
        // 1B run's moments are 4.9 GB).
        mapping.release(info.offset..<(info.offset + info.byteCount))
    }

    private func require(_ name: String) throws -> SafetensorsTensorInfo {
        guard let info = tensor(name) else { throw LoadError.missingTensor(file: path, tensor: name) }
        return info
    }

    // MARK: TensorSource

    public var path: String { mapping.path }
    public var origin: String { mapping.path }
    public var tensorNames: [String] { tensors.map(\.name) }
    public func shape(of name: String) -> [Int]? { tensor(name)?.shape }

    public func read(_ name: String, into destination: UnsafeMutableBufferPointer<Float>) throws {
        let info = try require(name)
        guard destination.count == info.elementCount, let dst = destination.baseAddress else {
            if info.elementCount == 0 && destination.isEmpty { return }
            throw LoadError.shapeMismatch(file: path, tensor: name, expected: info.shape, found: [destination.count])
        }
        let raw = data(of: info)
        let n = info.elementCount
        guard n > 0, let src = raw.baseAddress else { return }
        // Rows only matter for splitting the work across cores.
        let rows = info.shape.count >= 2 ? info.shape[0] : 1
        switch info.dtype {
        case .f32: Dequantize.rows(of: .f32, from: src, rowCount: rows, rowLength: n / rows, into: dst)
        case .f16: Dequantize.rows(of: .f16, from: src, rowCount: rows, rowLength: n / rows, into: dst)
        case .bf16: Dequantize.rows(of: .bf16, from: src, rowCount: rows, rowLength: n / rows, into: dst)
        case .f64:
            for i in 0..<n { dst[i] = Float(Double(bitPattern: raw.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self))) }
        case .i64, .i32, .i16, .i8, .u8, .bool:
            for (i, v) in try ints(name).enumerated() { dst[i] = Float(v) }
        }
        // Converted: its file pages need not stay in memory beside the copy.
        mapping.release(info.offset..<(info.offset + info.byteCount))
    }
}
