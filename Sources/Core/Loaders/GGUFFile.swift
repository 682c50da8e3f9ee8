// GGUFFile: a memory-mapped GGUF (v2 or v3) file: its metadata, its tensor
// table, and Float conversion of its tensors in GGUF's own names and order.
//
// Layout (little-endian): magic "GGUF", version u32, tensor count u64,
// metadata count u64, the metadata key-values, the tensor infos, padding to
// `general.alignment`, then tensor data. Everything is checked against the file
// size while parsing, so a damaged file is refused with a `LoadError` that names
// it. Hugging Face naming and the q/k unpermute live in `GGUFTensorSource`.
import Foundation
import Trial

/// One tensor's entry in a GGUF tensor table.
public struct GGUFTensorInfo: Sendable, Equatable {
    /// The GGUF name (`blk.0.attn_q.weight`).
    public let name: String
    /// Dimensions in GGUF order: `dimensions[0]` is the contiguous one.
    public let dimensions: [Int]
    /// The storage type.
    public let type: GGMLType
    /// Absolute offset of the data in the file.
    public let offset: Int
    /// Size of the data in bytes.
    public let byteCount: Int

    /// Number of values.
    public var elementCount: Int { dimensions.reduce(1, *) }
    /// Dimensions in PyTorch order (outermost first): `[rows, columns]` for a matrix.
    public var shape: [Int] { dimensions.reversed() }
}

/// A parsed, memory-mapped GGUF file. Tensor data stays in the mapping and is
/// converted on `read`.
public final class GGUFFile: Sendable {
    /// Format versions this reader accepts; v1 used 32-bit counts.
    public static let supportedVersions: ClosedRange<Int> = 2...3
    /// Alignment of tensor data when `general.alignment` is absent.
    public static let defaultAlignment = 32

    public let url: URL
    public let version: Int
    public let metadata: GGUFMetadata
    /// Tensor infos in file order.
    public let tensors: [GGUFTensorInfo]
    /// Alignment of tensor data, from `general.alignment`.
    public let alignment: Int
    /// Offset of the tensor data section.
    public let dataOffset: Int

    let mapping: MappedFile
    private let indexByName: [String: Int]

    /// Maps and parses the file at `url`.
    public convenience init(url: URL) throws {
        try self.init(mapping: MappedFile(url: url))
    }

    init(mapping: MappedFile) throws {
        let file = mapping.path
        var cursor = ByteCursor(mapping.bytes, file: file)
        let magic = try cursor.read(UInt32.self, "magic")
        guard magic == 0x4655_4747 else {  // "GGUF" read little-endian
            throw LoadError.badMagic(file: file, found: Self.showMagic(magic), expected: "GGUF")
        }
        let version = Int(try cursor.read(UInt32.self, "version"))
        guard Self.supportedVersions.contains(version) else {
            throw LoadError.unsupportedVersion(file: file, version: version)
        }
        let tensorCount = try cursor.readCount("tensor count")
        let kvCount = try cursor.readCount("metadata count")
        // The smallest key-value is 13 bytes and the smallest tensor info 32,
        // so larger counts cannot fit in the file; refuse before allocating.
        if kvCount > cursor.remaining / 13 || tensorCount > cursor.remaining / 32 {
            throw LoadError.malformed(
                file: file,
                reason: "header claims \(kvCount) metadata entries and \(tensorCount) tensors, "
                    + "more than a \(mapping.bytes.count)-byte file can hold")
        }

        var keys: [String] = []
        var values: [String: GGUFValue] = [:]
        var valuesLeft = Self.maximumMetadataValues
        for i in 0..<kvCount {
            let key = try Self.readString(&cursor, "metadata key #\(i)")
            let type = try cursor.read(UInt32.self, "type of metadata \(key)")
            try Self.spend(1, of: &valuesLeft, key: key, file: file)
            let value = try Self.readValue(&cursor, type: type, key: key, depth: 0, valuesLeft: &valuesLeft)
            if values.updateValue(value, forKey: key) != nil {
                throw LoadError.malformed(file: file, reason: "metadata key \(key) appears twice")
            }
            keys.append(key)
        }
        let metadata = GGUFMetadata(keys: keys, values: values, file: file)

        var alignment = Self.defaultAlignment
        if values["general.alignment"] != nil {
            alignment = try metadata.required("general.alignment", metadata.int)
            guard alignment > 0, alignment & (alignment - 1) == 0 else {
                throw LoadError.malformed(file: file, reason: "general.alignment \(alignment) is not a power of two")
            }
        }

        var pending: [(name: String, dims: [Int], type: GGMLType, relative: Int, bytes: Int)] = []
        pending.reserveCapacity(tensorCount)
        for i in 0..<tensorCount {
            let name = try Self.readString(&cursor, "name of tensor #\(i)")
            let rank = Int(try cursor.read(UInt32.self, "rank of tensor \(name)"))
            guard (1...4).contains(rank) else {
                throw LoadError.malformed(file: file, reason: "tensor \(name) has \(rank) dimensions (ggml allows 1 to 4)")
            }
            var dims: [Int] = []
            var elements = 1
            for _ in 0..<rank {
                let d = try cursor.readCount("dimension of tensor \(name)")
                let (product, overflow) = elements.multipliedReportingOverflow(by: d)
                guard d > 0, !overflow, product <= mapping.bytes.count * 256 else {
                    throw LoadError.malformed(file: file, reason: "tensor \(name) has absurd dimension \(d)")
                }
                dims.append(d)
                elements = product
            }
            let typeID = try cursor.read(UInt32.self, "type of tensor \(name)")
            guard let type = GGMLType(rawValue: typeID) else {
                throw LoadError.unsupportedType(file: file, tensor: name, type: "unknown ggml type id \(typeID)")
            }
            guard dims[0] % type.blockSize == 0 else {
                throw LoadError.malformed(
                    file: file,
                    reason: "tensor \(name) has rows of \(dims[0]) values, not a multiple of the \(type) block size \(type.blockSize)")
            }
            let relative = try cursor.readCount("data offset of tensor \(name)")
            guard relative % alignment == 0 else {
                throw LoadError.malformed(file: file, reason: "tensor \(name) data offset \(relative) is not \(alignment)-aligned")
            }
            pending.append((name, dims, type, relative, elements / type.blockSize * type.blockBytes))
        }
        cursor.align(to: alignment)
        let dataOffset = cursor.offset

        var tensors: [GGUFTensorInfo] = []
        var index: [String: Int] = [:]
        for t in pending {
            let (start, overflow) = dataOffset.addingReportingOverflow(t.relative)
            guard !overflow, start <= mapping.bytes.count, t.bytes <= mapping.bytes.count - start else {
                throw LoadError.truncated(
                    file: file,
                    reason: "tensor \(t.name) (\(t.bytes) bytes at offset \(t.relative) past \(dataOffset)) "
                        + "ends beyond the file's \(mapping.bytes.count) bytes")
            }
            if index.updateValue(tensors.count, forKey: t.name) != nil {
                throw LoadError.malformed(file: file, reason: "tensor \(t.name) appears twice")
            }
            tensors.append(GGUFTensorInfo(name: t.name, dimensions: t.dims, type: t.type, offset: start, byteCount: t.bytes))
        }
        try refuseOverlappingData(tensors, file: file)

        self.url = URL(fileURLWithPath: file)
        self.version = version
        self.metadata = metadata
        self.tensors = tensors
        self.alignment = alignment
        self.dataOffset = dataOffset
        self.mapping = mapping
        self.indexByName = index
    }

    /// The file's path, for messages.
    public var path: String { mapping.path }

    /// The info of the tensor with GGUF name `name`.
    public func tensor(_ name: String) -> GGUFTensorInfo? {
        indexByName[name].map { tensors[$0] }
    }

    /// The raw bytes of a tensor; valid while this file is alive.
    public func data(of tensor: GGUFTensorInfo) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: mapping.bytes[tensor.offset..<(tensor.offset + tensor.byteCount)])
    }

    /// Converts a tensor to Float in GGUF order (row = `dimensions[0]` values).
    /// Destination row `r` is taken from source row `sourceRow(r)`.
    public func read(
        _ tensor: GGUFTensorInfo, into destination: UnsafeMutableBufferPointer<Float>,
        sourceRow: @escaping @Sendable (Int) -> Int = { $0 }
    ) throws {
        guard tensor.type.isSupported else {
            throw LoadError.unsupportedType(
                file: path, tensor: tensor.name,
                type: "\(tensor.type) (FactSweep reads F32, F16, BF16, Q4_0, Q4_1, Q8_0, Q6_K; re-quantise the model to one of these)")
        }
        guard destination.count == tensor.elementCount, let base = destination.baseAddress else {
            throw LoadError.shapeMismatch(
                file: path, tensor: tensor.name, expected: tensor.shape, found: [destination.count])
        }
        let rowLength = tensor.dimensions[0]
        guard let source = data(of: tensor).baseAddress else { return }
        Dequantize.rows(
            of: tensor.type, from: source, rowCount: tensor.elementCount / rowLength, rowLength: rowLength,
            into: base, sourceRow: sourceRow)
        // Converted: its file pages need not stay in memory beside the copy.
        mapping.release(tensor.offset..<(tensor.offset + tensor.byteCount))
    }

    // MARK: Parsing

    /// Arrays may nest; a limit keeps a hostile file from exhausting the stack.
    private static let maximumNesting = 4

    /// The most metadata values (keys' values and array elements, nested ones
    /// included) a file may hold. A `GGUFValue` takes 24 bytes in an array
    /// however few it takes in the file (a uint8 element, one), so the file's
    /// size alone would let a 1 GB array take 24 GB, reserved at once or
    /// grown into; this bounds the values to 192 MiB. Real files hold far
    /// fewer: Llama 3's tokenizer about 540,000 (128,256 tokens and types,
    /// 280,147 merges).
    static let maximumMetadataValues = 1 << 23

    /// Takes `count` values from what the file may still hold, or refuses it naming `key`.
    private static func spend(_ count: Int, of valuesLeft: inout Int, key: String, file: String) throws {
        guard count <= valuesLeft else {
            throw LoadError.malformed(
                file: file, reason: "metadata \(key) brings the file's metadata past \(maximumMetadataValues) values")
        }
        valuesLeft -= count
    }

    private static func readString(_ cursor: inout ByteCursor, _ what: String) throws -> String {
        let length = try cursor.readCount("length of \(what)")
        let bytes = try cursor.take(length, what)
        return String(decoding: bytes, as: UTF8.self)
    }

    private static func readValue(_ c: inout ByteCursor, type: UInt32, key: String, depth: Int, valuesLeft: inout Int) throws -> GGUFValue {
        let what = "value of metadata \(key)"
        switch type {
        case 0: return .uint8(try c.read(UInt8.self, what))
        case 1: return .int8(try c.read(Int8.self, what))
        case 2: return .uint16(try c.read(UInt16.self, what))
        case 3: return .int16(try c.read(Int16.self, what))
        case 4: return .uint32(try c.read(UInt32.self, what))
        case 5: return .int32(try c.read(Int32.self, what))
        case 6: return .float32(Float(bitPattern: try c.read(UInt32.self, what)))
        case 7:
            let b = try c.read(UInt8.self, what)
            guard b <= 1 else { throw LoadError.malformed(file: c.file, reason: "metadata \(key) has bool value \(b)") }
            return .bool(b == 1)
        case 8: return .string(try readString(&c, what))
        case 9:
            guard depth < maximumNesting else {
                throw LoadError.malformed(file: c.file, reason: "metadata \(key) nests arrays too deeply")
            }
            let elementType = try c.read(UInt32.self, "element type of metadata \(key)")
            let count = try c.readCount("length of metadata \(key)")
            // A count the remaining bytes cannot hold is a lie; refuse it before
            // reserving memory for it.
            guard count <= c.remaining / minimumBytes(ofValueType: elementType) else {
                throw LoadError.truncated(
                    file: c.file, reason: "metadata \(key) claims \(count) elements with \(c.remaining) bytes left")
            }
            try spend(count, of: &valuesLeft, key: key, file: c.file)
            var elements: [GGUFValue] = []
            elements.reserveCapacity(count)
            for _ in 0..<count {
                elements.append(try readValue(&c, type: elementType, key: key, depth: depth + 1, valuesLeft: &valuesLeft))
            }
            return .array(elements)
        case 10: return .uint64(try c.read(UInt64.self, what))
        case 11: return .int64(try c.read(Int64.self, what))
        case 12: return .float64(Double(bitPattern: try c.read(UInt64.self, what)))
        default:
            throw LoadError.malformed(file: c.file, reason: "metadata \(key) has unknown value type \(type)")
        }
    }

    /// The fewest bytes a value of a GGUF type id can occupy.
    private static func minimumBytes(ofValueType type: UInt32) -> Int {
        switch type {
        case 0, 1, 7: 1
        case 2, 3: 2
        case 4, 5, 6: 4
        case 8, 10, 11, 12: 8  // a string is at least its u64 length
        case 9: 12  // element type u32 + count u64
        default: 1  // unknown: readValue refuses it on the first element
        }
    }

    /// The four magic bytes as text if printable, else hex.
    private static func showMagic(_ magic: UInt32) -> String {
        let bytes = withUnsafeBytes(of: magic.littleEndian) { Array($0) }
        if bytes.allSatisfy({ (0x20..<0x7F).contains($0) }) {
            return "\"" + String(decoding: bytes, as: UTF8.self) + "\""
        }
        return "0x" + bytes.map { String(format: "%02x", $0) }.joined()
    }
}
