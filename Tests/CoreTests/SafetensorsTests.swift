// SafetensorsTests: the writer and reader round-trip, a real checkpoint
// written by the safetensors library reads, sharded directories resolve, and
// ModelLocation classifies directories.
import Foundation
import Testing
import TestSupport
@testable import Core
import Trial

@Suite struct SafetensorsTests {
    @Test func writerRoundTripsFloatsIntsAndMetadata() throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanUp() }
        let weights: [Float] = (0..<24).map { Float($0) * 0.25 - 3 }
        var writer = SafetensorsWriter(metadata: ["step": "12", "note": "quote \" and / slash"])
        try writer.add("layer.weight", shape: [4, 6], weights)
        try writer.add("tokens", shape: [5], [Int32]([1, -2, 3, 2_000_000_000, 0]))
        try writer.add("empty", shape: [0, 3], [Float]())
        let url = dir.file("round.safetensors")
        try writer.write(to: url)
        // Overwriting is atomic and leaves no temporary files behind.
        try writer.write(to: url)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.url.path) == ["round.safetensors"])

        let file = try SafetensorsFile(url: url)
        #expect(file.metadata == ["step": "12", "note": "quote \" and / slash"])
        #expect(file.shape(of: "layer.weight") == [4, 6])
        #expect(try file.floats("layer.weight") == weights)
        #expect(try file.ints("tokens") == [1, -2, 3, 2_000_000_000, 0])
        #expect(try file.floats("tokens") == [1, -2, 3, 2_000_000_000, 0])
        #expect(try file.floats("empty") == [])
        #expect(file.tensors.allSatisfy { $0.offset % 4 == 0 }, "data stays 4-byte aligned")
    }

    @Test func writerRefusesMismatchedShapesAndDuplicates() throws {
        var writer = SafetensorsWriter()
        #expect(throws: LoadError.self) { try writer.add("w", shape: [2, 2], [Float](repeating: 0, count: 5)) }
        try writer.add("w", shape: [1], [Float(1)])
        #expect(throws: LoadError.self) { try writer.add("w", shape: [1], [Float(2)]) }
    }

    @Test func realCheckpointReads() throws {
        let file = try SafetensorsFile(url: TestPaths.model("all-minilm-l6-v2/model.safetensors"))
        #expect(file.tensors.count == 104)
        #expect(file.metadata["format"] == "pt")
        for info in file.tensors where info.dtype == .f32 {
            let values = try file.floats(info.name)
            #expect(values.allSatisfy { $0.isFinite }, "\(info.name)")
        }
        let embeddings = try #require(file.tensors.first { $0.name.hasSuffix("word_embeddings.weight") })
        #expect(embeddings.shape == [30522, 384])
    }

    /// A tiny Llama checkpoint split over two shards by an index.
    static func writeShardedCheckpoint(in dir: TemporaryDirectory) throws -> [String: [Float]] {
        let tensors: [String: [Float]] = [
            "model.embed_tokens.weight": (0..<32).map { Float($0) },
            "model.norm.weight": [1, 2, 3, 4],
            "model.layers.0.self_attn.q_proj.weight": (0..<16).map { -Float($0) },
        ]
        var first = SafetensorsWriter(), second = SafetensorsWriter()
        try first.add("model.embed_tokens.weight", shape: [8, 4], tensors["model.embed_tokens.weight"] ?? [])
        try second.add("model.norm.weight", shape: [4], tensors["model.norm.weight"] ?? [])
        try second.add("model.layers.0.self_attn.q_proj.weight", shape: [4, 4], tensors["model.layers.0.self_attn.q_proj.weight"] ?? [])
        try first.write(to: dir.file("model-00001-of-00002.safetensors"))
        try second.write(to: dir.file("model-00002-of-00002.safetensors"))
        let index = """
        {"metadata": {"total_size": 208}, "weight_map": {
          "model.embed_tokens.weight": "model-00001-of-00002.safetensors",
          "model.norm.weight": "model-00002-of-00002.safetensors",
          "model.layers.0.self_attn.q_proj.weight": "model-00002-of-00002.safetensors"}}
        """
        try Data(index.utf8).write(to: dir.file(HFDirectoryTensorSource.indexFileName))
        return tensors
    }

    @Test func shardedIndexResolvesEveryTensor() throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanUp() }
        let tensors = try Self.writeShardedCheckpoint(in: dir)
        let source = try HFDirectoryTensorSource(directory: dir.url)
        #expect(Set(source.tensorNames) == Set(tensors.keys))
        for (name, values) in tensors {
            #expect(try source.floats(name) == values, "\(name)")
        }
        #expect(source.shape(of: "model.layers.0.self_attn.q_proj.weight") == [4, 4])
        expectLoadError(mentioning: dir.url.lastPathComponent, "lm_head.weight") { _ = try source.floats("lm_head.weight") }
    }

    @Test func indexNamingAMissingTensorIsRefused() throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanUp() }
        _ = try Self.writeShardedCheckpoint(in: dir)
        let index = #"{"weight_map": {"lm_head.weight": "model-00001-of-00002.safetensors"}}"#
        try Data(index.utf8).write(to: dir.file(HFDirectoryTensorSource.indexFileName))
        expectLoadError(mentioning: "model-00001-of-00002.safetensors", "lm_head.weight") {
            _ = try HFDirectoryTensorSource(directory: dir.url)
        }
    }

    @Test func modelLocationClassifiesDirectories() throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanUp() }
        expectLoadError(mentioning: dir.url.lastPathComponent, "no model") { _ = try ModelLocation.resolve(dir.url) }
        expectLoadError(mentioning: "absent") { _ = try ModelLocation.resolve(dir.file("absent")) }

        _ = try Self.writeShardedCheckpoint(in: dir)
        let config = #"{"model_type":"llama","vocab_size":8,"hidden_size":4,"intermediate_size":8,"#
            + #""num_hidden_layers":1,"num_attention_heads":2,"num_key_value_heads":1}"#
        try Data(config.utf8).write(to: dir.file("config.json"))
        #expect(try ModelLocation.resolve(dir.url) == .huggingFace(directory: dir.url))
        let model = try ModelLocation.open(dir.url)
        #expect(model.configuration.hiddenSize == 4 && model.gguf == nil)
        #expect(try model.tensors.floats("model.norm.weight") == [1, 2, 3, 4])

        // A GGUF beside a full checkpoint is ambiguous.
        try FileManager.default.copyItem(at: try Golden.url("quant/quant-types.ggufdata"), to: dir.file("extra.gguf"))
        expectLoadError(mentioning: dir.url.lastPathComponent, "ambiguous", "extra.gguf") {
            _ = try ModelLocation.resolve(dir.url)
        }
        expectLoadError(mentioning: "config.json") { _ = try ModelLocation.resolve(dir.file("config.json")) }
    }
}
