// GGUFValue: one typed metadata value of a GGUF file, and lenient accessors.
//
// GGUF writers are not consistent about integer widths (a token id may be
// stored as UInt32 in one file and Int32 in another), so the accessors convert
// between numeric types where no value is lost, and return nil otherwise.
import Trial

/// A metadata value exactly as stored in a GGUF file.
public enum GGUFValue: Sendable, Equatable {
    case uint8(UInt8), int8(Int8), uint16(UInt16), int16(Int16)
    case uint32(UInt32), int32(Int32), uint64(UInt64), int64(Int64)
    case float32(Float), float64(Double)
    case bool(Bool)
    case string(String)
    case array([GGUFValue])

    /// The value as an `Int`, for any integer type whose value fits.
    public var intValue: Int? {
        switch self {
        case let .uint8(v): Int(v)
        case let .int8(v): Int(v)
        case let .uint16(v): Int(v)
        case let .int16(v): Int(v)
        case let .uint32(v): Int(v)
        case let .int32(v): Int(v)
        case let .uint64(v): Int(exactly: v)
        case let .int64(v): Int(v)
        default: nil
        }
    }

    /// The value as a `Float`, for floating-point types and integers.
    public var floatValue: Float? {
        switch self {
        case let .float32(v): v
        case let .float64(v): Float(v)
        default: intValue.map(Float.init)
        }
    }

    /// The value as a `Bool`.
    public var boolValue: Bool? {
        if case let .bool(v) = self { return v }
        return nil
    }

    /// The value as a `String`.
    public var stringValue: String? {
        if case let .string(v) = self { return v }
        return nil
    }

    /// The elements of an array value.
    public var arrayValue: [GGUFValue]? {
        if case let .array(v) = self { return v }
        return nil
    }

    /// The name of the stored type, for messages about a mistyped key.
    public var typeName: String {
        switch self {
        case .uint8: "uint8"
        case .int8: "int8"
        case .uint16: "uint16"
        case .int16: "int16"
        case .uint32: "uint32"
        case .int32: "int32"
        case .uint64: "uint64"
        case .int64: "int64"
        case .float32: "float32"
        case .float64: "float64"
        case .bool: "bool"
        case .string: "string"
        case let .array(v): "array[\(v.first?.typeName ?? "")]"
        }
    }
}

/// The key-value metadata of a GGUF file, in file order, with typed lookups.
public struct GGUFMetadata: Sendable {
    /// Keys in the order the file stores them.
    public let keys: [String]
    /// Every value by key.
    public let values: [String: GGUFValue]
    /// The file the metadata came from, for error messages.
    public let file: String

    /// The raw value of `key`, if present.
    public subscript(key: String) -> GGUFValue? { values[key] }

    /// A string value.
    public func string(_ key: String) -> String? { values[key]?.stringValue }
    /// An integer value of any width that fits in `Int`.
    public func int(_ key: String) -> Int? { values[key]?.intValue }
    /// A floating-point (or integer) value as `Float`.
    public func float(_ key: String) -> Float? { values[key]?.floatValue }
    /// A boolean value.
    public func bool(_ key: String) -> Bool? { values[key]?.boolValue }

    /// An array of strings (`tokenizer.ggml.tokens`, `tokenizer.ggml.merges`);
    /// nil if absent or if any element is not a string.
    public func stringArray(_ key: String) -> [String]? {
        elements(key) { $0.stringValue }
    }

    /// An array of integers (`tokenizer.ggml.token_type`).
    public func intArray(_ key: String) -> [Int]? {
        elements(key) { $0.intValue }
    }

    /// An array of floats (`tokenizer.ggml.scores`).
    public func floatArray(_ key: String) -> [Float]? {
        elements(key) { $0.floatValue }
    }

    /// Reads `key` with one of the accessors above, or throws an error naming
    /// the file, the key and what was found instead:
    /// `try metadata.required("llama.block_count", metadata.int)`.
    public func required<T>(_ key: String, _ accessor: (String) -> T?) throws -> T {
        guard let v = try optional(key, accessor) else {
            throw LoadError.badConfiguration(file: file, reason: "GGUF metadata key \(key) is missing")
        }
        return v
    }

    /// Reads `key` with one of the accessors above: nil when the key is absent,
    /// and an error naming the file, the key and what was found when it is
    /// present but not what the accessor reads — a value of another type, or an
    /// integer beyond `Int` — rather than taking it for absent and a default.
    public func optional<T>(_ key: String, _ accessor: (String) -> T?) throws -> T? {
        guard let value = values[key] else { return nil }
        if let v = accessor(key) { return v }
        // GGUF arrays hold one element type: a uint64 element may still not fit.
        let tooWide = { (v: GGUFValue) -> UInt64? in if case let .uint64(n) = v, Int(exactly: n) == nil { n } else { nil } }
        let beyond = "beyond the largest integer this reader holds (\(Int.max))"
        let found = if let n = tooWide(value) {
            "has type \(value.typeName) (\(n), \(beyond))"
        } else if let elements = value.arrayValue, let i = elements.firstIndex(where: { tooWide($0) != nil }), let n = tooWide(elements[i]) {
            "has type \(value.typeName) (element \(i) is \(n), \(beyond))"
        } else {
            "has type \(value.typeName)"
        }
        throw LoadError.badConfiguration(file: file, reason: "GGUF metadata key \(key) \(found)")
    }

    private func elements<T>(_ key: String, _ convert: (GGUFValue) -> T?) -> [T]? {
        guard let array = values[key]?.arrayValue else { return nil }
        var out: [T] = []
        out.reserveCapacity(array.count)
        for element in array {
            guard let v = convert(element) else { return nil }
            out.append(v)
        }
        return out
    }
}
