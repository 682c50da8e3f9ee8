// ConfigurationJSON: decoding a Hugging Face `config.json` into a strict
// configuration struct, with every failure naming the file, and the checks
// such structs share (required fields, refused values).
import Foundation
import Trial

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

extension KeyedDecodingContainer {
    /// The value at `key`; absent or null is `ModelConfigurationError.missing` naming the key.
    func required<T: Decodable>(_ key: Key) throws -> T {
        guard let value = try decodeIfPresent(T.self, forKey: key) else {
            throw ModelConfigurationError.missing(field: key.stringValue)
        }
        return value
    }

    /// Refuses a present value other than `supported`; an absent key means the default.
    func refuseUnless<T: Decodable & Equatable>(_ key: Key, is supported: T) throws {
        if let value = try decodeIfPresent(T.self, forKey: key), value != supported {
            throw ModelConfigurationError.unsupported(field: key.stringValue, value: "\(value)", supported: "\(supported)")
        }
    }

    /// Refuses an `architectures` list naming anything but `supported`.
    func refuseArchitectures(_ key: Key, except supported: String) throws {
        if let bad = try decodeIfPresent([String].self, forKey: key)?.first(where: { $0 != supported }) {
            throw ModelConfigurationError.unsupported(field: key.stringValue, value: bad, supported: supported)
        }
    }
}
