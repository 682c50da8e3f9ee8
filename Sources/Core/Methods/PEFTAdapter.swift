// PEFTAdapter: LoRA and IA³ adapters in Hugging Face PEFT's directory format
// (adapter_config.json + adapter_model.safetensors), written from a trial and
// read back to start one, so that adapters move between FactSweep and PEFT.
import Foundation
import Trial

/// The fields of PEFT's `adapter_config.json` that FactSweep writes and reads.
public struct PEFTAdapterConfig: Codable, Sendable, Equatable {
    public var peftType: String
    public var taskType: String? = "CAUSAL_LM"
    public var targetModules: [String]
    public var r: Int?
    public var loraAlpha: Float?
    public var loraDropout: Float?
    public var useRslora: Bool?
    public var bias: String?
    public var fanInFanOut: Bool? = false
    public var feedforwardModules: [String]?
    public var baseModelNameOrPath: String?
    public var inferenceMode: Bool? = true
    public var rankPattern: [String: Double]?
    public var alphaPattern: [String: Double]?
    public var useDora: Bool?

    enum CodingKeys: String, CodingKey {
        case peftType = "peft_type", taskType = "task_type", targetModules = "target_modules", r
        case loraAlpha = "lora_alpha", loraDropout = "lora_dropout", useRslora = "use_rslora", bias
        case fanInFanOut = "fan_in_fan_out", feedforwardModules = "feedforward_modules"
        case baseModelNameOrPath = "base_model_name_or_path", inferenceMode = "inference_mode"
        case rankPattern = "rank_pattern", alphaPattern = "alpha_pattern", useDora = "use_dora"
    }

    /// The config of `method` (LoRA, QLoRA or IA³).
    public init(method: MethodSettings, baseModel: String?) throws {
        let targets = method.resolvedTargets.map(\.rawValue)
        switch method.kind {
        case .lora, .qlora:
            peftType = "LORA"
            r = method.rank; loraAlpha = method.alpha; loraDropout = method.dropout; useRslora = method.rsLoRA; bias = "none"
        case .ia3:
            peftType = "IA3"
            feedforwardModules = method.resolvedTargets.contains(.down) ? ["down_proj"] : []
        case .full:
            throw MethodError("full fine-tuning has no adapter: export it merged")
        }
        targetModules = targets
        baseModelNameOrPath = baseModel
    }

    /// The method this adapter trains with (`qlora` when asked for: the file format is LoRA's).
    public func methodSettings(quantizedBase: Bool, file: String) throws -> MethodSettings {
        func fail(_ reason: String) -> CheckpointError { CheckpointError(file: file, reason: reason) }
        let targets = try targetModules.map { name -> ProjectionKind in
            // PEFT also accepts full module paths; the last component names the projection.
            let last = name.split(separator: ".").last.map(String.init) ?? name
            guard let kind = ProjectionKind(rawValue: last) else { throw fail("target module \(name) is not a Llama projection") }
            return kind
        }
        guard taskType ?? "CAUSAL_LM" == "CAUSAL_LM" else { throw fail("task_type \(taskType ?? "") is not CAUSAL_LM") }
        guard fanInFanOut != true else { throw fail("fan_in_fan_out adapters are not supported") }
        guard rankPattern?.isEmpty ?? true, alphaPattern?.isEmpty ?? true else { throw fail("per-module rank_pattern/alpha_pattern is not supported") }
        guard useDora != true else { throw fail("DoRA adapters are not supported") }
        switch peftType {
        case "LORA":
            guard let r, let loraAlpha else { throw fail("a LoRA config needs r and lora_alpha") }
            if let bias, bias != "none" { throw fail("bias \"\(bias)\" is not supported (only none)") }
            return MethodSettings(kind: quantizedBase ? .qlora : .lora, rank: r, alpha: loraAlpha, dropout: loraDropout ?? 0,
                                  rsLoRA: useRslora ?? false, targets: targets)
        case "IA3":
            let feedforward = Set(feedforwardModules ?? [])
            for kind in targets where feedforward.contains(kind.rawValue) != (kind == .down) {
                throw fail("IA³ feed-forward modules must be exactly down_proj among the targets (got \(feedforward.sorted()))")
            }
            return MethodSettings(kind: .ia3, targets: targets)
        default:
            throw fail("peft_type \(peftType) is not supported (LORA, IA3)")
        }
    }
}

extension LanguageModel {
    /// What an adapter trained on this model names as `base_model_name_or_path`:
    /// the model's own name when its files hold one (GGUF `general.name`,
    /// config.json `_name_or_path`), else the path it was loaded from. PEFT
    /// reads the field as a hub id or a path on the machine that loads the
    /// adapter, where this machine's path means nothing.
    public var adapterBaseModel: String { modelDescription?.name ?? location.path }
}

extension FineTuning {
    /// Writes the trained adapter as a PEFT directory.
    public func exportAdapter(to directory: URL, baseModel: String?) throws {
        let config = try PEFTAdapterConfig(method: method, baseModel: baseModel)
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        var writer = SafetensorsWriter(metadata: ["format": "pt"])
        for e in trainable {
            try writer.add(e.name, shape: e.shape, UnsafeBufferPointer(start: parameters.base + e.offset, count: e.count))
        }
        try writer.write(to: directory.appendingPathComponent("adapter_model.safetensors"))
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try encoder.encode(config).write(to: directory.appendingPathComponent("adapter_config.json"), options: .atomic)
    }

    /// Replaces the adapter's initial values with a PEFT directory's tensors.
    /// Every tensor of this method must be there with its shape; extra ones are refused.
    public func loadAdapter(from directory: URL) throws {
        try loadAdapter(file: directory.appendingPathComponent("adapter_model.safetensors"))
    }

    /// `loadAdapter(from:)` for one safetensors file of PEFT-named tensors.
    public func loadAdapter(file url: URL) throws {
        let file = try SafetensorsFile(url: url)
        let expected = Set(trainable.map(\.name))
        if let extra = file.tensorNames.first(where: { !expected.contains($0) }) {
            throw CheckpointError(file: url.path, reason: "tensor \(extra) does not belong to a \(method.kind.rawValue) adapter with these settings")
        }
        for e in trainable {
            guard let shape = file.shape(of: e.name) else { throw LoadError.missingTensor(file: url.path, tensor: e.name) }
            guard shape == e.shape else { throw LoadError.shapeMismatch(file: url.path, tensor: e.name, expected: e.shape, found: shape) }
            try file.read(e.name, into: UnsafeMutableBufferPointer(start: parameters.base + e.offset, count: e.count))
        }
    }

    /// The method settings of a PEFT adapter directory.
    public static func adapterSettings(_ directory: URL, quantizedBase: Bool) throws -> MethodSettings {
        let url = directory.appendingPathComponent("adapter_config.json")
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw CheckpointError(file: url.path, reason: "cannot read: \(error.localizedDescription)")
        }
        let config: PEFTAdapterConfig
        do { config = try JSONDecoder().decode(PEFTAdapterConfig.self, from: data) } catch let e as DecodingError {
            throw CheckpointError(file: url.path, reason: e.shortDescription)
        }
        return try config.methodSettings(quantizedBase: quantizedBase, file: url.path)
    }
}
