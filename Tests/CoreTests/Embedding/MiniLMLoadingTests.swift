// Loading a sentence-transformers directory: what is refused, with the file
// and field named, and the checkpoint name variants that are accepted.
import Foundation
import Testing
@testable import Core
import TestSupport
import Trial

@Suite struct MiniLMLoadingTests {
    /// A copy of all-MiniLM-L6-v2's directory (the weights linked, not copied)
    /// with `edit` applied to one JSON file.
    static func directory(editing name: String, _ edit: (inout [String: Any]) -> Void) throws -> TemporaryDirectory {
        let source = try TestPaths.model("all-minilm-l6-v2")
        let dir = try TemporaryDirectory()
        for file in ["config.json", "tokenizer.json"] {
            try FileManager.default.copyItem(at: source.appendingPathComponent(file), to: dir.file(file))
        }
        try FileManager.default.createSymbolicLink(
            at: dir.file("model.safetensors"), withDestinationURL: source.appendingPathComponent("model.safetensors"))
        var object = (try? JSONSerialization.jsonObject(with: Data(contentsOf: dir.file(name)))) as? [String: Any] ?? [:]
        edit(&object)
        try JSONSerialization.data(withJSONObject: object).write(to: dir.file(name))
        return dir
    }

    static func refusal(_ dir: TemporaryDirectory) -> String {
        do {
            _ = try SentenceEmbedder.load(dir.url)
            return "(loaded)"
        } catch {
            return "\(error)"
        }
    }

    @Test func unsupportedConfigurationsAreRefusedByField() throws {
        let cases: [(String, Any, String)] = [
            ("hidden_act", "gelu_new", "hidden_act gelu_new"),
            ("position_embedding_type", "relative_key", "position_embedding_type relative_key"),
            ("model_type", "roberta", "model_type roberta"),
            ("is_decoder", true, "is_decoder true"),
        ]
        for (key, value, expected) in cases {
            let message = Self.refusal(try Self.directory(editing: "config.json") { $0[key] = value })
            #expect(message.contains("config.json") && message.contains(expected), "\(key): \(message)")
        }
    }

    @Test func unsupportedTokenizerComponentsAreRefusedByField() throws {
        let cases: [(String, (inout [String: Any]) -> Void)] = [
            ("pre_tokenizer", { $0["pre_tokenizer"] = ["type": "Whitespace"] }),
            ("normalizer", { $0["normalizer"] = ["type": "NFKC"] }),
            ("post_processor", { $0["post_processor"] = ["type": "RobertaProcessing"] }),
            ("model.type", { json in
                if var model = json["model"] as? [String: Any] { model["type"] = "Unigram"; json["model"] = model }
            }),
        ]
        for (field, edit) in cases {
            let message = Self.refusal(try Self.directory(editing: "tokenizer.json", edit))
            #expect(message.contains("tokenizer.json: \(field)") && message.contains("WordPiece tokenizer"), "\(field): \(message)")
        }
    }

    @Test func sentenceTransformersFilesAreChecked() throws {
        let dir = try Self.directory(editing: "config.json") { _ in }
        let modules: [[String: Any]] = [
            ["idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"],
            ["idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"],
            ["idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"],
        ]
        try JSONSerialization.data(withJSONObject: modules).write(to: dir.file("modules.json"))
        try Data(#"{"max_seq_length": 128, "do_lower_case": false}"#.utf8).write(to: dir.file("sentence_bert_config.json"))
        try FileManager.default.createDirectory(at: dir.file("1_Pooling"), withIntermediateDirectories: true)
        try Data(#"{"word_embedding_dimension": 384, "pooling_mode_cls_token": false, "pooling_mode_mean_tokens": true}"#.utf8)
            .write(to: dir.file("1_Pooling/config.json"))
        let embedder = try SentenceEmbedder.load(dir.url)
        #expect(embedder.maxSequenceLength == 128)
        #expect(embedder.tokenIds(String(repeating: "word ", count: 300)).count == 128)

        try Data(#"{"pooling_mode_cls_token": true, "pooling_mode_mean_tokens": false}"#.utf8)
            .write(to: dir.file("1_Pooling/config.json"))
        let pooling = Self.refusal(dir)
        #expect(pooling.contains("1_Pooling/config.json") && pooling.contains("pooling_mode_"), "\(pooling)")

        try JSONSerialization.data(withJSONObject: modules + [["type": "sentence_transformers.models.Dense"]])
            .write(to: dir.file("modules.json"))
        let dense = Self.refusal(dir)
        #expect(dense.contains("modules.json") && dense.contains("Dense"), "\(dense)")
    }

    /// A two-layer random BERT written under BertForMaskedLM's `bert.` names loads
    /// into the same places; a missing or misshapen tensor is named.
    @Test func checkpointNamesWithPrefixLoadAndMismatchesAreNamed() throws {
        let config = BertConfiguration(vocabularySize: 11, hiddenSize: 8, intermediateSize: 12, layerCount: 2, headCount: 2, maxPositions: 6)
        let reference = BertWeights(config: config)
        let dir = try TemporaryDirectory()
        func write(skipping skipped: String? = nil, reshaping reshaped: String? = nil) throws -> SafetensorsFile {
            var writer = SafetensorsWriter()
            var value: Float = 0
            for (name, shape) in BertWeights.checkpointTensors(config) where name != skipped {
                let count = shape.reduce(1, *)
                let values = (0..<count).map { _ -> Float in value += 0.01; return value }
                try writer.add("bert." + name, shape: name == reshaped ? [count] : shape, values)
            }
            try writer.write(to: dir.file("model.safetensors"))
            return try SafetensorsFile(url: dir.file("model.safetensors"))
        }
        try reference.load(from: try write())
        #expect(reference.wordEmbeddings[0] == 0.01)
        #expect(reference.layers[1].qkvWeight[config.hiddenSize * config.hiddenSize] > reference.layers[1].qkvWeight[0],
                "key rows follow query rows")

        let missing = "encoder.layer.1.attention.self.key.bias"
        #expect(throws: LoadError.missingTensor(file: dir.file("model.safetensors").path, tensor: "bert." + missing)) {
            try BertWeights(config: config).load(from: try write(skipping: missing))
        }
        let misshapen = "encoder.layer.0.intermediate.dense.weight"
        #expect(throws: LoadError.shapeMismatch(file: dir.file("model.safetensors").path, tensor: "bert." + misshapen,
                                                expected: [12, 8], found: [96])) {
            try BertWeights(config: config).load(from: try write(reshaping: misshapen))
        }
    }

    @Test func configurationSizesAreCheckedBeforeAnythingIsSizedFromThem() throws {
        // Sizes whose products overflow: refused by field, not trapped on in the weights' layout.
        let wide = Self.refusal(try Self.directory(editing: "config.json") { $0["hidden_size"] = 1 << 62; $0["num_attention_heads"] = 4 })
        #expect(wide.contains("config.json") && wide.contains("invalid vocab_size") && wide.contains("overflows"), "\(wide)")
        // A hundred million layers: refused at the first the file lacks, before a plan or an arena is made for them.
        let deep = Self.refusal(try Self.directory(editing: "config.json") { $0["num_hidden_layers"] = 100_000_000 })
        #expect(deep.contains("model.safetensors") && deep.contains("encoder.layer.6.") && deep.contains("missing"), "\(deep)")
    }
}
