// ModelLocation: decides what a user-given model path holds (Core opens it),
// so that a sweep spec is checked before any worker loads the model.
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

    /// A Hugging Face checkpoint's weights in one file, or sharded with an index.
    public static let safetensorsFileName = "model.safetensors"
    public static let safetensorsIndexFileName = "model.safetensors.index.json"

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
            && (names.contains(ModelLocation.safetensorsFileName) || names.contains(ModelLocation.safetensorsIndexFileName))
        switch (ggufs.count, isHuggingFace) {
        case (0, true):
            return .huggingFace(directory: url)
        case (1, false):
            return .gguf(url.appendingPathComponent(ggufs[0]))
        case (0, false):
            throw LoadError.unreadable(
                file: url.path,
                reason: "no model here: expected one .gguf file, or config.json with \(ModelLocation.safetensorsFileName) "
                    + "or \(ModelLocation.safetensorsIndexFileName)")
        default:
            let found = ggufs + (isHuggingFace ? ["a Hugging Face checkpoint"] : [])
            throw LoadError.unreadable(
                file: url.path, reason: "ambiguous: holds \(found.joined(separator: ", ")); pass the file to use")
        }
    }
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
