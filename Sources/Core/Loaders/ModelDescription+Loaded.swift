// ModelDescription+Loaded: describes a model as Core loaded it — container,
// stored weight types, what training uses, parameter count.
import Foundation
import Trial

extension ModelDescription {
    /// The description of `loaded` when its projections are held as `storage`.
    public init(_ loaded: LoadedModel, storage: LinearStorage) {
        let parameters = ParameterLayout(config: loaded.configuration).parameterCount
        var valuesByType: [String: Int] = [:]
        let container: String
        let name: String?
        if let gguf = loaded.gguf {
            container = "GGUF"
            for tensor in gguf.tensors { valuesByType[tensor.type.description, default: 0] += tensor.elementCount }
            name = gguf.metadata.string("general.name")
        } else {
            container = "safetensors"
            if let source = loaded.tensors as? HFDirectoryTensorSource {
                for tensorName in source.tensorNames {
                    guard let dtype = source.dtype(of: tensorName), let shape = source.shape(of: tensorName) else { continue }
                    valuesByType[dtype.rawValue, default: 0] += shape.reduce(1, *)
                }
            }
            name = Self.configName(loaded.location)
        }
        let total = max(1, valuesByType.values.reduce(0, +))
        let types = valuesByType.sorted { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }
        var weights = ([container] + types.prefix(1).map(\.key)).joined(separator: " ")
        let others = types.dropFirst().map { type, count in
            let percent = 100 * Double(count) / Double(total)
            return "\(type) " + (percent < 1 ? "<1%" : "\(Int(percent.rounded()))%")
        }
        if !others.isEmpty { weights += " (also \(others.joined(separator: ", ")))" }
        switch types.first?.key {
        case nil, "F32": break
        case "F16", "BF16", "F64": weights += ", converted to Float32"
        default: weights += ", dequantised to Float32"
        }
        switch storage {
        case .float32: break
        case .nf4: weights += ", projections quantised again to NF4 (QLoRA)"
        case .bf16: weights += ", projections rounded to bf16 (bf16 precision)"
        }
        self.init(name: name, file: loaded.location.path.split(separator: "/").last.map(String.init) ?? loaded.location.path,
                  weights: weights, parameters: parameters)
    }

    /// `_name_or_path` of a Hugging Face directory's config.json, when set.
    private static func configName(_ location: ModelLocation) -> String? {
        guard case let .huggingFace(directory) = location,
              let data = try? Data(contentsOf: directory.appendingPathComponent("config.json")),
              let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
              let name = object["_name_or_path"] as? String, !name.isEmpty
        else { return nil }
        return name
    }
}
