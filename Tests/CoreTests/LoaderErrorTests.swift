// LoaderErrorTests: damaged or wrong files are refused with a LoadError naming
// the file, never a crash: truncation at every point of the header, wrong
// magic, unknown and unsupported types, absurd counts, shape mismatches.
import Foundation
import Testing
@testable import Core
import TestSupport
import Trial

@Suite struct LoaderErrorTests {
    /// The golden GGUF's bytes, to damage.
    static func goldenGGUF() throws -> [UInt8] {
        [UInt8](try Data(contentsOf: Golden.url("quant/quant-types.ggufdata")))
    }

    /// Offset of the u32 type id in the tensor info of `name`.
    static func typeOffset(of name: String, rank: Int, in bytes: [UInt8]) throws -> Int {
        let needle = withUnsafeBytes(of: UInt64(name.utf8.count).littleEndian, Array.init) + Array(name.utf8)
        let start = try #require(
            (0...(bytes.count - needle.count)).last { Array(bytes[$0..<($0 + needle.count)]) == needle })
        return start + needle.count + 4 + 8 * rank
    }

    static func write(_ bytes: [UInt8], _ name: String, in dir: TemporaryDirectory) throws -> URL {
        let url = dir.file(name)
        try Data(bytes).write(to: url)
        return url
    }

    @Test func truncatedGGUFAtEveryPointIsRefused() throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanUp() }
        let bytes = try Self.goldenGGUF()
        let golden = try GGUFFile(url: Golden.url("quant/quant-types.ggufdata"))
        // Every cut inside the header and tensor table, and a few in the data
        // (the file's trailing padding may be cut harmlessly).
        let dataEnd = golden.tensors.map { $0.offset + $0.byteCount }.max() ?? 0
        let cuts = Array(0..<golden.dataOffset) + [golden.dataOffset + 1, dataEnd - 1300, dataEnd - 1]
        for cut in cuts {
            let url = try Self.write(Array(bytes[0..<cut]), "cut-\(cut).gguf", in: dir)
            expectLoadError(mentioning: "cut-\(cut).gguf") { _ = try GGUFFile(url: url) }
        }
    }

    @Test func wrongMagicIsRefused() throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanUp() }
        var bytes = try Self.goldenGGUF()
        bytes.replaceSubrange(0..<4, with: Array("GGML".utf8))
        let url = try Self.write(bytes, "ggml-magic.gguf", in: dir)
        let error = expectLoadError(mentioning: "ggml-magic.gguf", "GGML") { _ = try GGUFFile(url: url) }
        #expect(error == .badMagic(file: url.path, found: "\"GGML\"", expected: "GGUF"))
    }

    @Test func unsupportedVersionIsRefused() throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanUp() }
        var bytes = try Self.goldenGGUF()
        bytes[4] = 1
        let url = try Self.write(bytes, "v1.gguf", in: dir)
        expectLoadError(mentioning: "v1.gguf", "version 1") { _ = try GGUFFile(url: url) }
    }

    @Test func unknownTypeIdIsRefusedWhileParsing() throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanUp() }
        var bytes = try Self.goldenGGUF()
        bytes[try Self.typeOffset(of: "q4_1", rank: 2, in: bytes)] = 99
        let url = try Self.write(bytes, "unknown-type.gguf", in: dir)
        expectLoadError(mentioning: "unknown-type.gguf", "q4_1", "99") { _ = try GGUFFile(url: url) }
    }

    @Test func knownButUnsupportedTypeIsRefusedOnRead() throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanUp() }
        var bytes = try Self.goldenGGUF()
        bytes[try Self.typeOffset(of: "q6_k", rank: 2, in: bytes)] = UInt8(GGMLType.q4_K.rawValue)
        let url = try Self.write(bytes, "q4k.gguf", in: dir)
        let gguf = try GGUFFile(url: url)
        #expect(gguf.tensor("q6_k")?.type == .q4_K)
        expectLoadError(mentioning: "q4k.gguf", "q6_k", "Q4_K") { _ = try gguf.floats(gguf: "q6_k") }
    }

    @Test func absurdCountsAreRefused() throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanUp() }
        var bytes = try Self.goldenGGUF()
        bytes.replaceSubrange(8..<16, with: withUnsafeBytes(of: UInt64(1 << 40).littleEndian, Array.init))
        let url = try Self.write(bytes, "many-tensors.gguf", in: dir)
        expectLoadError(mentioning: "many-tensors.gguf", "tensors") { _ = try GGUFFile(url: url) }

        // An array of strings claiming 2^40 elements: refused before allocating.
        var array = try Self.goldenGGUF()
        let key = Array("test.strings".utf8)
        let keyEnd = try #require((0...(array.count - key.count)).first { Array(array[$0..<($0 + key.count)]) == key }) + key.count
        array.replaceSubrange((keyEnd + 8)..<(keyEnd + 16), with: withUnsafeBytes(of: UInt64(1 << 40).littleEndian, Array.init))
        let arrayURL = try Self.write(array, "long-array.gguf", in: dir)
        expectLoadError(mentioning: "long-array.gguf", "test.strings") { _ = try GGUFFile(url: arrayURL) }
    }

    @Test func tensorDataBeyondTheEndIsRefused() throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanUp() }
        var bytes = try Self.goldenGGUF()
        // The offset follows the type id; point the tensor far past the end.
        let offset = try Self.typeOffset(of: "f32", rank: 2, in: bytes) + 4
        bytes.replaceSubrange(offset..<(offset + 8), with: withUnsafeBytes(of: UInt64(1 << 20).littleEndian, Array.init))
        let url = try Self.write(bytes, "far-offset.gguf", in: dir)
        expectLoadError(mentioning: "far-offset.gguf", "f32") { _ = try GGUFFile(url: url) }
    }

    @Test func ggufTokenizerIdsPastThirtyTwoBitsAreRefused() throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanUp() }
        func tokenizer(typeOfSecond: Int64, eos: UInt64) -> GGUFBuilder {
            var gguf = GGUFBuilder()
            gguf.add("tokenizer.ggml.model", string: "gpt2")
            gguf.add("tokenizer.ggml.tokens", strings: ["a", "b"])
            gguf.add("tokenizer.ggml.merges", strings: [])
            gguf.add("tokenizer.ggml.token_type", arrayOf: 11, count: 2) { GGUFBuilder.le($0 == 1 ? typeOfSecond : 1) }
            gguf.add("tokenizer.ggml.eos_token_id", uint64: eos)
            return gguf
        }
        let types = try tokenizer(typeOfSecond: 1 << 40, eos: 1).write("wide-type.gguf", in: dir)
        expectLoadError(mentioning: "wide-type.gguf", "tokenizer.ggml.token_type[1]") { _ = try Tokenizer(gguf: GGUFFile(url: types)) }
        let eos = try tokenizer(typeOfSecond: 1, eos: 1 << 32).write("wide-eos.gguf", in: dir)
        expectLoadError(mentioning: "wide-eos.gguf", "tokenizer.ggml.eos_token_id") { _ = try Tokenizer(gguf: GGUFFile(url: eos)) }
    }

    /// A tokenizer key present with a value the reader cannot take is refused by name, not taken for absent
    /// (a token_type array read as absent made every token normal, control tokens tokenised as text).
    @Test func ggufTokenizerKeysOfAnotherTypeOrPastIntAreRefused() throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanUp() }
        func tokenizer(_ add: (inout GGUFBuilder) -> Void) -> GGUFBuilder {
            var gguf = GGUFBuilder()
            gguf.add("tokenizer.ggml.model", string: "gpt2")
            gguf.add("tokenizer.ggml.tokens", strings: ["a", "b", "c"])
            gguf.add("tokenizer.ggml.merges", strings: [])
            add(&gguf)
            return gguf
        }
        let cases: [(String, (inout GGUFBuilder) -> Void, [String])] = [
            ("types-past-int.gguf", { $0.add("tokenizer.ggml.token_type", arrayOf: 10, count: 3) { GGUFBuilder.le($0 == 2 ? UInt64.max : 1) } },
             ["tokenizer.ggml.token_type", "has type array[uint64] (element 2 is 18446744073709551615, beyond"]),
            ("types-as-strings.gguf", { $0.add("tokenizer.ggml.token_type", strings: ["1", "1", "3"]) },
             ["tokenizer.ggml.token_type", "has type array[string]"]),
            ("bos-past-int.gguf", { $0.add("tokenizer.ggml.bos_token_id", uint64: UInt64.max) },
             ["tokenizer.ggml.bos_token_id", "has type uint64 (18446744073709551615, beyond"]),
            ("pad-as-string.gguf", { $0.add("tokenizer.ggml.padding_token_id", string: "2") },
             ["tokenizer.ggml.padding_token_id", "has type string"]),
            ("pre-as-number.gguf", { $0.add("tokenizer.ggml.pre", uint32: 7) }, ["tokenizer.ggml.pre", "has type uint32"]),
            ("add-bos-as-string.gguf", { $0.add("tokenizer.ggml.add_bos_token", string: "true") },
             ["tokenizer.ggml.add_bos_token", "has type string"]),
        ]
        for (name, add, fragments) in cases {
            let url = try tokenizer(add).write(name, in: dir)
            let error = expectLoadError(mentioning: name) { _ = try Tokenizer(gguf: GGUFFile(url: url)) }
            for fragment in fragments { #expect(error?.description.contains(fragment) == true, "\(name): \(String(describing: error))") }
        }
        // The same keys well typed load.
        let fine = try tokenizer {
            $0.add("tokenizer.ggml.token_type", arrayOf: 10, count: 3) { _ in GGUFBuilder.le(UInt64(1)) }
            $0.add("tokenizer.ggml.bos_token_id", uint64: 1)
        }.write("fine.gguf", in: dir)
        #expect(throws: Never.self) { _ = try Tokenizer(gguf: GGUFFile(url: fine)) }
    }

    @Test func ggufMetadataPastItsValueLimitIsRefused() throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanUp() }
        // A uint8 array as long as the limit: with its key, one value too many.
        // Held as GGUFValues it would take 24 times its bytes.
        let count = GGUFFile.maximumMetadataValues
        var gguf = GGUFBuilder()
        gguf.add("test.bytes", type: 9, GGUFBuilder.le(UInt32(0)) + GGUFBuilder.le(UInt64(count)) + [UInt8](repeating: 0, count: count))
        let url = try gguf.write("long-bytes.gguf", in: dir)
        expectLoadError(mentioning: "long-bytes.gguf", "test.bytes", "\(count) values") { _ = try GGUFFile(url: url) }
    }

    @Test func tensorsSharingBytesAreRefused() throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanUp() }
        var apart = GGUFBuilder()
        apart.addTensor("first", dimensions: [8])
        apart.addTensor("second", dimensions: [8])
        #expect(try GGUFFile(url: apart.write("apart.gguf", in: dir)).tensors.count == 2)
        var overlapping = GGUFBuilder()
        overlapping.addTensor("first", dimensions: [8])
        overlapping.addTensor("second", dimensions: [4], offset: 0)
        let url = try overlapping.write("overlap.gguf", in: dir)
        expectLoadError(mentioning: "overlap.gguf", "first", "second", "overlap") { _ = try GGUFFile(url: url) }

        let header = #"{"first":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"#
            + #""empty":{"dtype":"F32","shape":[0],"data_offsets":[4,4]},"#
            + #""second":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#
        let safetensors = try Self.write(Self.safetensors(header: header, data: Array(repeating: 0, count: 12)), "overlap.safetensors", in: dir)
        expectLoadError(mentioning: "overlap.safetensors", "first", "second", "overlap") { _ = try SafetensorsFile(url: safetensors) }
        let touching = #"{"first":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"#
            + #""empty":{"dtype":"F32","shape":[0],"data_offsets":[4,4]},"#
            + #""second":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}"#
        let fine = try Self.write(Self.safetensors(header: touching, data: Array(repeating: 0, count: 12)), "touching.safetensors", in: dir)
        #expect(try SafetensorsFile(url: fine).tensors.count == 3)
    }

    @Test func ropeFrequenciesAreCountedBeforeTheyAreRead() throws {
        var gguf = GGUFBuilder()
        gguf.addLlama()
        gguf.addTensor("rope_freqs.weight", dimensions: [64])
        try gguf.expectConfigurationRefused(as: "rope-freqs.gguf", "rope_freqs.weight has 64 values, expected 2")
    }

    @Test func configurationPromisingMoreThanTheFileFailsAtTheFirstMissingTensor() throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanUp() }
        let small = LlamaConfiguration(
            vocabularySize: 8, hiddenSize: 8, intermediateSize: 16, layerCount: 1, headCount: 2, kvHeadCount: 2,
            tieWordEmbeddings: true)
        let model = LlamaModel(config: small)
        var writer = SafetensorsWriter()
        for e in model.layout.entries { try writer.add(e.name, shape: e.shape, UnsafeBufferPointer(model.tensor(e.name))) }
        try writer.write(to: dir.file("model.safetensors"))
        let file = try SafetensorsFile(url: dir.file("model.safetensors"))
        _ = try LlamaModel(config: small, source: file)
        // A hundred million layers: refused at layer 1 before a layout or an
        // arena is made for them all, whatever the storage.
        var deep = small
        deep.layerCount = 100_000_000
        for storage in [LinearStorage.float32, .nf4] {
            #expect(throws: LoadError.missingTensor(file: file.path, tensor: "model.layers.1.input_layernorm.weight")) {
                _ = try LlamaModel(config: deep, source: file, storage: storage)
            }
        }
        // A vocabulary of 2^30 rows (a 32 GiB arena): refused at the embedding's shape.
        var wide = small
        wide.vocabularySize = 1 << 30
        #expect(throws: LoadError.shapeMismatch(file: file.path, tensor: "model.embed_tokens.weight", expected: [1 << 30, 8], found: [8, 8])) {
            _ = try LlamaModel(config: wide, source: file)
        }
    }

    @Test func wrongDestinationSizeIsRefused() throws {
        let gguf = try GGUFFile(url: Golden.url("quant/quant-types.ggufdata"))
        let info = try #require(gguf.tensor("q8_0"))
        var small = [Float](repeating: 0, count: info.elementCount - 1)
        expectLoadError(mentioning: "quant-types.ggufdata", "q8_0") {
            try small.withUnsafeMutableBufferPointer { try gguf.read(info, into: $0) }
        }
        let safetensors = try SafetensorsFile(url: Golden.url("quant/expected.safetensors"))
        expectLoadError(mentioning: "expected.safetensors", "q8_0") {
            try small.withUnsafeMutableBufferPointer { try safetensors.read("q8_0", into: $0) }
        }
        expectLoadError(mentioning: "expected.safetensors", "nope") { _ = try safetensors.floats("nope") }
    }

    @Test func missingFileAndDirectoriesAreRefused() throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanUp() }
        expectLoadError(mentioning: "absent.gguf") { _ = try GGUFFile(url: dir.file("absent.gguf")) }
        expectLoadError(mentioning: dir.url.lastPathComponent) { _ = try GGUFFile(url: dir.url) }
        expectLoadError(mentioning: "empty.safetensors") {
            try Data().write(to: dir.file("empty.safetensors"))
            _ = try SafetensorsFile(url: dir.file("empty.safetensors"))
        }
    }

    // MARK: Safetensors

    /// A safetensors file from a header and raw data.
    static func safetensors(header: String, data: [UInt8]) -> [UInt8] {
        withUnsafeBytes(of: UInt64(header.utf8.count).littleEndian, Array.init) + Array(header.utf8) + data
    }

    @Test func truncatedSafetensorsIsRefused() throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanUp() }
        var writer = SafetensorsWriter()
        try writer.add("w", shape: [3, 4], (0..<12).map(Float.init))
        let whole = dir.file("whole.safetensors")
        try writer.write(to: whole)
        let bytes = [UInt8](try Data(contentsOf: whole))
        for cut in [0, 4, 8, 20, bytes.count - 48, bytes.count - 1] {
            let url = try Self.write(Array(bytes[0..<cut]), "cut-\(cut).safetensors", in: dir)
            expectLoadError(mentioning: "cut-\(cut).safetensors") { _ = try SafetensorsFile(url: url) }
        }
    }

    @Test func inconsistentSafetensorsHeadersAreRefused() throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanUp() }
        let cases: [(String, String, [UInt8])] = [
            ("shape", #"{"w":{"dtype":"F32","shape":[2,3],"data_offsets":[0,16]}}"#, Array(repeating: 0, count: 16)),
            ("dtype", #"{"w":{"dtype":"F8_E4M3","shape":[2],"data_offsets":[0,2]}}"#, [0, 0]),
            ("offsets", #"{"w":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}}"#, Array(repeating: 0, count: 4)),
            ("json", #"{"w":"#, []),
            ("metadata", #"{"__metadata__":{"a":1}}"#, []),
        ]
        for (label, header, data) in cases {
            let url = try Self.write(Self.safetensors(header: header, data: data), "bad-\(label).safetensors", in: dir)
            expectLoadError(mentioning: "bad-\(label).safetensors") { _ = try SafetensorsFile(url: url) }
        }
        let huge = withUnsafeBytes(of: UInt64(1 << 50).littleEndian, Array.init) + [UInt8](repeating: 0, count: 8)
        let url = try Self.write(huge, "huge-header.safetensors", in: dir)
        expectLoadError(mentioning: "huge-header.safetensors") { _ = try SafetensorsFile(url: url) }
    }

    @Test func overflowingSafetensorsShapeIsRefusedWithoutTrapping() throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanUp() }
        let header = #"{"w":{"dtype":"F32","shape":[2305843009213693952],"data_offsets":[0,0]}}"#
        let url = try Self.write(Self.safetensors(header: header, data: []), "overflow.safetensors", in: dir)
        expectLoadError(mentioning: "overflow.safetensors", "tensor w", "more than") { _ = try SafetensorsFile(url: url) }
    }
}
