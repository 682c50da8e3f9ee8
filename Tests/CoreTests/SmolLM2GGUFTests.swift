// SmolLM2GGUFTests: the real SmolLM2-135M-Instruct Q4_1 GGUF: metadata,
// configuration, every tensor, and q/k rows against transformers' own GGUF
// loader (Golden/gguf/smollm2_layer0_reference.safetensors, written by
// scripts/reference/dump_gguf_reference.py).
import Foundation
import Testing
import TestSupport
@testable import Core
import Trial

@Suite struct SmolLM2GGUFTests {
    static func file() throws -> GGUFFile {
        try GGUFFile(url: TestPaths.model("smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf"))
    }

    @Test func configurationFromMetadata() throws {
        let gguf = try Self.file()
        let c = try LlamaConfiguration(gguf: gguf)
        let expected = LlamaConfiguration(
            vocabularySize: 49152, hiddenSize: 576, intermediateSize: 1536, layerCount: 30,
            headCount: 9, kvHeadCount: 3, headDimension: 64, rmsNormEps: 1e-5, ropeTheta: 100_000,
            ropeScaling: .none, tieWordEmbeddings: true, maxPositions: 8192, bosTokenId: 1, eosTokenIds: [2])
        #expect(c == expected)
    }

    @Test func tokenizerMetadata() throws {
        let m = try Self.file().metadata
        #expect(m.string("tokenizer.ggml.model") == "gpt2")
        #expect(m.string("tokenizer.ggml.pre") == "smollm")
        let tokens = try #require(m.stringArray("tokenizer.ggml.tokens"))
        #expect(tokens.count == 49152)
        #expect(tokens[1] == "<|im_start|>" && tokens[2] == "<|im_end|>")
        #expect(m.stringArray("tokenizer.ggml.merges")?.count == 48900)
        #expect(m.intArray("tokenizer.ggml.token_type")?.count == 49152)
        #expect(m.string("tokenizer.chat_template")?.contains("<|im_start|>") == true)
    }

    @Test func everyTensorReadsWithHuggingFaceNamesAndShapes() throws {
        let gguf = try Self.file()
        let source = GGUFTensorSource(file: gguf, configuration: try LlamaConfiguration(gguf: gguf))
        #expect(source.tensorNames.count == 272)
        #expect(source.shape(of: "model.embed_tokens.weight") == [49152, 576])
        #expect(source.shape(of: "model.layers.0.self_attn.k_proj.weight") == [192, 576])
        #expect(source.shape(of: "model.layers.29.mlp.down_proj.weight") == [576, 1536])
        #expect(source.shape(of: "model.norm.weight") == [576])
        #expect(source.shape(of: "lm_head.weight") == nil)
        let total = source.tensorNames.reduce(0) { $0 + (source.shape(of: $1)?.reduce(1, *) ?? 0) }
        var buffer = [Float](repeating: 0, count: 49152 * 576)
        let clock = ContinuousClock()
        var nonFinite: [String] = []
        let elapsed = try clock.measure {
            for name in source.tensorNames {
                let count = source.shape(of: name)?.reduce(1, *) ?? 0
                try buffer.withUnsafeMutableBufferPointer { all in
                    let slice = UnsafeMutableBufferPointer(rebasing: all[0..<count])
                    try source.read(name, into: slice)
                    if !slice.allSatisfy({ $0.isFinite }) { nonFinite.append(name) }
                }
            }
        }
        #expect(nonFinite.isEmpty, "non-finite values in \(nonFinite)")
        print("SmolLM2 GGUF: \(total) values in \(source.tensorNames.count) tensors converted in \(elapsed)")
    }

    /// q and k rows must come out in Hugging Face order (transformers'
    /// loader is the reference); v and down are untouched.
    @Test func attentionRowsMatchTransformers() throws {
        let gguf = try Self.file()
        let source = GGUFTensorSource(file: gguf, configuration: try LlamaConfiguration(gguf: gguf))
        let reference = try SafetensorsFile(url: Golden.url("gguf/smollm2_layer0_reference.safetensors"))
        for (projection, columns) in [("q_proj", 576), ("k_proj", 576)] {
            let weights = try source.floats("model.layers.0.self_attn.\(projection).weight")
            let indices = try reference.ints("\(projection).row_indices")
            let rows = try reference.floats("\(projection).rows")
            for (k, row) in indices.enumerated() {
                let got = Array(weights[(row * columns)..<((row + 1) * columns)])
                let want = Array(rows[(k * columns)..<((k + 1) * columns)])
                #expect(maxAbsDifference(got, want) <= 1e-6, "\(projection) row \(row)")
            }
            try expectRowSums(weights, columns: columns, reference: reference, key: "\(projection).row_sums")
        }
        try expectRowSums(
            source.floats("model.layers.0.self_attn.v_proj.weight"), columns: 576, reference: reference, key: "v_proj.row_sums")
        try expectRowSums(
            source.floats("model.layers.0.mlp.down_proj.weight"), columns: 1536, reference: reference, key: "down_proj.row_sums")
    }

    private func expectRowSums(
        _ weights: [Float], columns: Int, reference: SafetensorsFile, key: String,
        sourceLocation: SourceLocation = #_sourceLocation
    ) throws {
        let want = try reference.floats(key)
        #expect(weights.count == want.count * columns, sourceLocation: sourceLocation)
        var worst: Float = 0
        for r in 0..<want.count {
            let sum = weights[(r * columns)..<((r + 1) * columns)].reduce(0.0) { $0 + Double($1) }
            worst = max(worst, abs(Float(sum) - want[r]) / max(1, abs(want[r])))
        }
        #expect(worst <= 1e-5, "\(key): worst relative row-sum error \(worst)", sourceLocation: sourceLocation)
    }

    @Test func modelLocationOpensTheFileAndItsDirectory() throws {
        let url = try TestPaths.model("smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf")
        for given in [url, url.deletingLastPathComponent()] {
            guard case let .gguf(found) = try ModelLocation.resolve(given) else {
                Issue.record("\(given.path) should resolve to the GGUF file")
                continue
            }
            #expect(found.standardizedFileURL.path == url.standardizedFileURL.path)
        }
        let model = try ModelLocation.open(url)
        #expect(model.configuration.layerCount == 30 && model.gguf != nil)
        #expect(model.tensors.shape(of: "model.layers.0.self_attn.q_proj.weight") == [576, 576])
    }
}
