// ConfigurationJSON: decoding a Hugging Face `config.json` into a strict
// configuration struct, with every failure naming the file.
import Foundation

enum ConfigurationJSON {
    /// Decodes `url` as `T`; decoding and validation errors become `LoadError`s naming the file.
    static func decode<T: Decodable>(_ type: T.Type, from url: URL) throws -> T {
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw LoadError.unreadable(file: url.path, reason: error.localizedDescription)
        }
        do {
            return try JSONDecoder().decode(T.self, from: data)
        } catch let e as ModelConfigurationError {
            throw LoadError.badConfiguration(file: url.path, reason: e.description)
        } catch let e as DecodingError {
            throw LoadError.badConfiguration(file: url.path, reason: e.shortDescription)
        }
    }
}
