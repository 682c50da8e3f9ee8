// HFDirectoryTensorSource: the weights of a Hugging Face checkpoint directory,
// either one `model.safetensors` or shards listed by
// `model.safetensors.index.json`'s `weight_map`.
import Foundation
import Trial

/// Tensors of a Hugging Face directory, read from whichever shard holds each.
public struct HFDirectoryTensorSource: TensorSource {
    public static let singleFileName = ModelLocation.safetensorsFileName
    public static let indexFileName = ModelLocation.safetensorsIndexFileName

    public let directory: URL
    /// The shard holding each tensor.
    private let shardByName: [String: SafetensorsFile]
    public let tensorNames: [String]

    /// Opens the shards of `directory`, preferring the index when present.
    /// Every tensor the index lists must be in the shard it names.
    public init(directory: URL) throws {
        self.directory = directory
        let index = directory.appendingPathComponent(Self.indexFileName)
        let single = directory.appendingPathComponent(Self.singleFileName)
        var shardByName: [String: SafetensorsFile] = [:]
        if FileManager.default.fileExists(atPath: index.path) {
            let weightMap = try Self.readWeightMap(index)
            var shards: [String: SafetensorsFile] = [:]
            for shardName in Set(weightMap.values).sorted() {
                guard !shardName.contains("/") else {
                    throw LoadError.malformed(file: index.path, reason: "shard name \(shardName) must be a file in the same directory")
                }
                shards[shardName] = try SafetensorsFile(url: directory.appendingPathComponent(shardName))
            }
            for (name, shardName) in weightMap {
                guard let shard = shards[shardName], shard.tensor(name) != nil else {
                    throw LoadError.missingTensor(file: directory.appendingPathComponent(shardName).path, tensor: name)
                }
                shardByName[name] = shard
            }
        } else if FileManager.default.fileExists(atPath: single.path) {
            let file = try SafetensorsFile(url: single)
            for t in file.tensors { shardByName[t.name] = file }
        } else {
            throw LoadError.unreadable(
                file: directory.path, reason: "no \(Self.singleFileName) or \(Self.indexFileName) in this directory")
        }
        self.shardByName = shardByName
        self.tensorNames = shardByName.keys.sorted()
    }

    private static func readWeightMap(_ url: URL) throws -> [String: String] {
        struct Index: Decodable { var weight_map: [String: String] }
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw LoadError.unreadable(file: url.path, reason: error.localizedDescription)
        }
        do {
            return try JSONDecoder().decode(Index.self, from: data).weight_map
        } catch let e as DecodingError {
            throw LoadError.malformed(file: url.path, reason: e.shortDescription)
        }
    }

    public var origin: String { directory.path }

    public func shape(of name: String) -> [Int]? { shardByName[name]?.shape(of: name) }

    /// How the checkpoint stores a tensor (F32, F16, BF16), or nil if absent.
    public func dtype(of name: String) -> SafetensorsDType? { shardByName[name]?.tensor(name)?.dtype }

    public func read(_ name: String, into destination: UnsafeMutableBufferPointer<Float>) throws {
        guard let shard = shardByName[name] else { throw LoadError.missingTensor(file: directory.path, tensor: name) }
        try shard.read(name, into: destination)
    }
}
