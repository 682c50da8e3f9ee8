// ModelDescription: what summaries and reports say about a model — the
// default model is a Q4_1 GGUF dequantised to Float32, and QLoRA quantises
// its projections again.
import Foundation
import Testing
import Trial
@testable import Core
import TestSupport

@Suite struct ModelDescriptionTests {
    @Test func defaultModelIsADequantisedQ4_1GGUF() throws {
        let loaded = try ModelLocation.open(TestPaths.model("smollm2-135m-instruct"))
        let weights = "GGUF Q4_1 (also Q8_0 21%, F32 <1%), dequantised to Float32"
        #expect(ModelDescription(loaded, storage: .float32) == ModelDescription(
            name: "Smollm2 135M 8k Lc100K Mix1 Ep2", file: "SmolLM2-135M-Instruct.Q4_1.gguf", weights: weights,
            parameters: 134_515_008))
        #expect(ModelDescription(loaded, storage: .nf4).weights == weights + ", projections quantised again to NF4 (QLoRA)")
    }

    @Test func huggingFaceDirectoryIsNamedByItsConfig() throws {
        let dir = try TemporaryDirectory()
        try TinyCheckpoints.llama3(in: dir.url)
        let plain = ModelDescription(try ModelLocation.open(dir.url), storage: .float32)
        #expect(plain.name == nil && plain.file == dir.url.lastPathComponent && plain.weights == "safetensors F32")
        #expect(plain.parameters == ParameterLayout(config: try LlamaConfiguration.load(configJSON: dir.file("config.json"))).parameterCount)

        let configURL = dir.file("config.json")
        var config = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: configURL)) as? [String: Any])
        config["_name_or_path"] = "example/tiny-llama"
        try JSONSerialization.data(withJSONObject: config).write(to: configURL)
        #expect(ModelDescription(try ModelLocation.open(dir.url), storage: .float32).name == "example/tiny-llama")
    }
}
