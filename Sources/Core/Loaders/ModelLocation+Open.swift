// ModelLocation+Open: opens a classified model path — configuration, weights
// and, for GGUF, the file that also holds the tokenizer.
import Foundation
import Trial

extension ModelLocation {
    /// Opens the model: configuration and weights, and the GGUF file when the
    /// model is one (it also holds the tokenizer).
    public func open() throws -> LoadedModel {
        switch self {
        case let .gguf(url):
            let file = try GGUFFile(url: url)
            let configuration = try LlamaConfiguration(gguf: file)
            return LoadedModel(
                location: self, configuration: configuration,
                tensors: GGUFTensorSource(file: file, configuration: configuration), gguf: file)
        case let .huggingFace(directory):
            let configuration = try LlamaConfiguration.load(configJSON: directory.appendingPathComponent("config.json"))
            return LoadedModel(
                location: self, configuration: configuration,
                tensors: try HFDirectoryTensorSource(directory: directory), gguf: nil)
        }
    }

    /// Resolves and opens `url` in one step.
    public static func open(_ url: URL) throws -> LoadedModel {
        try resolve(url).open()
    }
}

/// An opened model: what the trainer needs to build and fill a Llama.
public struct LoadedModel: Sendable {
    public let location: ModelLocation
    public let configuration: LlamaConfiguration
    /// Weights in Hugging Face names and layout.
    public let tensors: any TensorSource
    /// The GGUF file, when the model is one, for its tokenizer metadata.
    public let gguf: GGUFFile?
}

