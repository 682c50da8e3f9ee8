// SentenceTransformersSettings: what a sentence-transformers model directory
// says around the Hugging Face model (modules.json, sentence_bert_config.json,
// 1_Pooling/config.json), checked against the one pipeline SentenceEmbedder
// implements: Transformer → Pooling(mean) → Normalize.
import Foundation
import Trial

struct SentenceTransformersSettings: Sendable, Equatable {
    /// sentence-transformers' `max_seq_length`: ids per sentence, [CLS] and [SEP] included.
    var maxSequenceLength: Int

    /// all-MiniLM-L6-v2's published sentence_bert_config.json, used when the
    /// directory holds only the Hugging Face files.
    static let miniLMMaxSequenceLength = 256

    /// Reads the files that are present; an absent file means all-MiniLM-L6-v2's
    /// published value, a present one must describe the implemented pipeline.
    static func read(_ directory: URL) throws -> SentenceTransformersSettings {
        var settings = SentenceTransformersSettings(maxSequenceLength: miniLMMaxSequenceLength)
        if let config = try json(directory, "sentence_bert_config.json") {
            let file = "sentence_bert_config.json"
            guard let length = config["max_seq_length"]?.int, length >= 2 else {
                throw LoadError.badConfiguration(file: file, reason: "max_seq_length \(config["max_seq_length"].map(\.description) ?? "(absent)") must be an integer >= 2")
            }
            if config["do_lower_case"]?.bool == true {
                throw LoadError.badConfiguration(file: file, reason: "do_lower_case true is not supported (the tokenizer lowercases)")
            }
            settings.maxSequenceLength = length
        }
        if let modules = try json(directory, "modules.json") {
            let types = (modules.array ?? []).map { $0["type"]?.string?.split(separator: ".").last.map(String.init) }
            guard types == ["Transformer", "Pooling", "Normalize"] else {
                throw LoadError.badConfiguration(
                    file: "modules.json", reason: "modules \(types.map { $0 ?? "?" }) are not supported (supported: Transformer, Pooling, Normalize)")
            }
        }
        if let pooling = try json(directory, "1_Pooling/config.json") {
            guard case let .object(fields) = pooling else {
                throw LoadError.malformed(file: "1_Pooling/config.json", reason: "not a JSON object")
            }
            for (key, value) in fields where key.hasPrefix("pooling_mode_") && value.bool != (key == "pooling_mode_mean_tokens") {
                throw LoadError.badConfiguration(file: "1_Pooling/config.json", reason: "\(key) \(value) is not supported (only mean pooling is)")
            }
        }
        return settings
    }

    private static func json(_ directory: URL, _ name: String) throws -> JSONValue? {
        let url = directory.appendingPathComponent(name)
        guard FileManager.default.fileExists(atPath: url.path) else { return nil }
        do {
            return try JSONScanner.parse([UInt8](try Data(contentsOf: url))) { try $0.value() }
        } catch let error as JSONScanner.SyntaxError {
            throw LoadError.malformed(file: name, reason: error.description)
        } catch {
            throw LoadError.unreadable(file: name, reason: error.localizedDescription)
        }
    }
}
