// LoaderTestHelpers: golden-file lookup, temporary directories and error
// checks shared by the loader tests.
import Foundation
import Testing
import TestSupport
@testable import Core
import Trial

/// Golden files committed under Tests/CoreTests/Golden.
enum Golden {
    static func url(_ relative: String) throws -> URL {
        let url = TestPaths.repositoryRoot.appendingPathComponent("Tests/CoreTests/Golden").appendingPathComponent(relative)
        guard FileManager.default.fileExists(atPath: url.path) else { throw Missing(path: url.path) }
        return url
    }

    /// A golden file is not there; regenerate it with scripts/reference.
    struct Missing: Error, CustomStringConvertible {
        let path: String
        var description: String { "missing golden file \(path): see scripts/reference/" }
    }
}

/// Runs `body`, requiring a `LoadError` whose description contains `fileName`
/// and each of `fragments`; returns the error for further checks.
@discardableResult
func expectLoadError(
    mentioning fileName: String, _ fragments: String..., sourceLocation: SourceLocation = #_sourceLocation,
    _ body: () throws -> Void
) -> LoadError? {
    do {
        try body()
        Issue.record("expected a LoadError mentioning \(fileName)", sourceLocation: sourceLocation)
    } catch let error as LoadError {
        #expect(error.description.contains(fileName), "\(error) should name \(fileName)", sourceLocation: sourceLocation)
        for fragment in fragments {
            #expect(error.description.contains(fragment), "\(error) should mention \(fragment)", sourceLocation: sourceLocation)
        }
        return error
    } catch {
        Issue.record("expected a LoadError, got \(error)", sourceLocation: sourceLocation)
    }
    return nil
}

/// Largest absolute difference between two equally long arrays (infinity if
/// the lengths differ).
func maxAbsDifference(_ a: [Float], _ b: [Float]) -> Float {
    guard a.count == b.count else { return .infinity }
    return zip(a, b).reduce(0) { max($0, abs($1.0 - $1.1)) }
}

extension GGUFFile {
    /// Reads a tensor by GGUF name in GGUF order.
    func floats(gguf name: String) throws -> [Float] {
        guard let info = tensor(name) else { throw LoadError.missingTensor(file: path, tensor: name) }
        var out = [Float](repeating: .nan, count: info.elementCount)
        try out.withUnsafeMutableBufferPointer { try read(info, into: $0) }
        return out
    }
}

/// A GGUF file built in memory: metadata and tensor infos, for headers no
/// real file has (zero heads, ids past 32 bits, long arrays). Tensor data is
/// zeros, each tensor placed after the one before unless an offset is given.
struct GGUFBuilder {
    private var metadata: [UInt8] = []
    private var metadataCount = 0
    private var infos: [UInt8] = []
    private var tensorCount = 0
    private var dataBytes = 0

    static func string(_ text: String) -> [UInt8] { le(UInt64(text.utf8.count)) + Array(text.utf8) }
    static func le<T: FixedWidthInteger>(_ value: T) -> [UInt8] { withUnsafeBytes(of: value.littleEndian, Array.init) }

    /// Adds a key whose value is `bytes` of GGUF type `type`.
    mutating func add(_ key: String, type: UInt32, _ bytes: [UInt8]) {
        metadata += Self.string(key) + Self.le(type) + bytes
        metadataCount += 1
    }

    mutating func add(_ key: String, string: String) { add(key, type: 8, Self.string(string)) }
    mutating func add(_ key: String, uint32: UInt32) { add(key, type: 4, Self.le(uint32)) }
    mutating func add(_ key: String, uint64: UInt64) { add(key, type: 10, Self.le(uint64)) }

    /// An array of `count` elements of GGUF type `elementType`, each `element`'s bytes.
    mutating func add(_ key: String, arrayOf elementType: UInt32, count: Int, element: (Int) -> [UInt8]) {
        var bytes = Self.le(elementType) + Self.le(UInt64(count))
        for i in 0..<count { bytes += element(i) }
        add(key, type: 9, bytes)
    }

    mutating func add(_ key: String, strings: [String]) { add(key, arrayOf: 8, count: strings.count) { Self.string(strings[$0]) } }

    /// The `llama.*` keys of a small valid configuration, with `changes` made to them.
    mutating func addLlama(_ changes: [String: UInt64] = [:]) {
        add("general.architecture", string: "llama")
        let keys: KeyValuePairs<String, UInt64> = [
            "llama.vocab_size": 8, "llama.embedding_length": 8, "llama.feed_forward_length": 16,
            "llama.block_count": 1, "llama.attention.head_count": 2,
        ]
        for (key, value) in keys { add(key, uint64: changes[key] ?? value) }
    }

    /// An F32 tensor of `dimensions` (GGUF order) at `offset` past the data start, or after the last.
    mutating func addTensor(_ name: String, dimensions: [Int], offset: Int? = nil) {
        let at = offset ?? dataBytes
        infos += Self.string(name) + Self.le(UInt32(dimensions.count)) + dimensions.flatMap { Self.le(UInt64($0)) }
            + Self.le(UInt32(GGMLType.f32.rawValue)) + Self.le(UInt64(at))
        tensorCount += 1
        dataBytes = max(dataBytes, at + (dimensions.reduce(4, *) + 31) / 32 * 32)
    }

    /// The file: header, metadata, tensor infos, padding to 32 bytes, data.
    var bytes: [UInt8] {
        var out = Array("GGUF".utf8) + Self.le(UInt32(3)) + Self.le(UInt64(tensorCount)) + Self.le(UInt64(metadataCount))
        out += metadata + infos
        out += [UInt8](repeating: 0, count: (32 - out.count % 32) % 32 + dataBytes)
        return out
    }

    /// Writes the file as `name` in `dir`.
    func write(_ name: String, in dir: TemporaryDirectory) throws -> URL {
        let url = dir.file(name)
        try Data(bytes).write(to: url)
        return url
    }

    /// Writes the file as `name` and requires `LlamaConfiguration(gguf:)` to
    /// refuse it with a `LoadError` naming it and mentioning each of `fragments`.
    func expectConfigurationRefused(
        as name: String, _ fragments: String..., sourceLocation: SourceLocation = #_sourceLocation
    ) throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanUp() }
        let url = try write(name, in: dir)
        let error = expectLoadError(mentioning: name, sourceLocation: sourceLocation) {
            _ = try LlamaConfiguration(gguf: GGUFFile(url: url))
        }
        for fragment in fragments {
            #expect(error?.description.contains(fragment) == true, "\(String(describing: error)) should mention \(fragment)",
                    sourceLocation: sourceLocation)
        }
    }
}
