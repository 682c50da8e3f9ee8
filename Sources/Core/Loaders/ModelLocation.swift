// ModelLocation: decides what a user-given model path holds and opens it.
//
// Accepted: a `.gguf` file; a directory holding exactly one `.gguf` file; a
// Hugging Face directory with `config.json` and safetensors weights. Anything
// else, or a directory that would fit two of these, is refused with an error
// naming the path, because guessing would train on the wrong weights.
import Foundation

/// Where a model's configuration and weights live.
public enum ModelLocation: Sendable, Equatable {
    /// A single GGUF file: configuration, weights and tokenizer in one.
    case gguf(URL)
    /// A Hugging Face checkpoint directory.
    case huggingFace(directory: URL)

    /// Classifies `url` (a file or a directory).
    public static func resolve(_ url: URL) throws -> ModelLocation {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory) else {
            throw LoadError.unreadable(file: url.path, reason: "no such file or directory")
        }
        if !isDirectory.boolValue {
            guard url.pathExtension.lowercased() == "gguf" else {
                throw LoadError.unreadable(
                    file: url.path, reason: "not a model: expected a .gguf file or a directory with config.json and safetensors")
            }
            return .gguf(url)
        }
        let names: [String]
        do { names = try FileManager.default.contentsOfDirectory(atPath: url.path) } catch {
            throw LoadError.unreadable(file: url.path, reason: error.localizedDescription)
        }
        let ggufs = names.filter { $0.lowercased().hasSuffix(".gguf") }.sorted()
        let isHuggingFace = names.contains("config.json")
            && (names.contains(HFDirectoryTensorSource.singleFileName) || names.contains(HFDirectoryTensorSource.indexFileName))
        switch (ggufs.count, isHuggingFace) {
        case (0, true):
            return .huggingFace(directory: url)
        case (1, false):
            return .gguf(url.appendingPathComponent(ggufs[0]))
        case (0, false):
            throw LoadError.unreadable(
                file: url.path,
                reason: "no model here: expected one .gguf file, or config.json with \(HFDirectoryTensorSource.singleFileName) "
                    + "or \(HFDirectoryTensorSource.indexFileName)")
        default:
            let found = ggufs + (isHuggingFace ? ["a Hugging Face checkpoint"] : [])
            throw LoadError.unreadable(
                file: url.path, reason: "ambiguous: holds \(found.joined(separator: ", ")); pass the file to use")
        }
    }

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

extension ModelLocation {
    /// The path the user gave, for messages.
    public var path: String {
        switch self {
        case let .gguf(url): url.path
        case let .huggingFace(directory): directory.path
        }
    }
}
