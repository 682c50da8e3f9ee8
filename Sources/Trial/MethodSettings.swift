// MethodSettings: which fine-tuning method a trial uses and how it is configured,
// with PEFT's defaults.
import Foundation

/// The fine-tuning methods of the study.
public enum MethodKind: String, Sendable, Codable, CaseIterable {
    case full, lora, qlora, ia3
}

/// A method and its settings. Defaults follow Hugging Face PEFT for Llama.
public struct MethodSettings: Sendable, Codable, Equatable {
    public var kind: MethodKind
    /// LoRA rank r.
    public var rank: Int = 8
    /// LoRA alpha; the adapter output is scaled by alpha/r (alpha/√r with rsLoRA).
    public var alpha: Float = 16
    public var dropout: Float = 0
    public var rsLoRA = false
    /// Projections that get an adapter. nil: PEFT's Llama default for the method
    /// (LoRA q_proj, v_proj; IA³ k_proj, v_proj, down_proj).
    public var targets: [ProjectionKind]?

    public init(kind: MethodKind, rank: Int = 8, alpha: Float = 16, dropout: Float = 0, rsLoRA: Bool = false, targets: [ProjectionKind]? = nil) {
        self.kind = kind; self.rank = rank; self.alpha = alpha; self.dropout = dropout; self.rsLoRA = rsLoRA; self.targets = targets
    }

    /// The projections adapted, defaults resolved.
    public var resolvedTargets: [ProjectionKind] {
        if let targets { return ProjectionKind.allCases.filter(targets.contains) }
        switch kind {
        case .full: return []
        case .lora, .qlora: return [.q, .v]
        case .ia3: return [.k, .v, .down]
        }
    }

    /// The LoRA output scale.
    public var loraScale: Float { rsLoRA ? alpha / Float(rank).squareRoot() : alpha / Float(rank) }

    /// Parses a target list: comma-separated module names, or "all-linear".
    public static func parseTargets(_ text: String) throws -> [ProjectionKind] {
        if text == "all-linear" { return ProjectionKind.allCases }
        return try text.split(separator: ",").map { name in
            let trimmed = name.trimmingCharacters(in: .whitespaces)
            guard let kind = ProjectionKind(rawValue: trimmed) else {
                throw MethodError("unknown target module \"\(trimmed)\" (expected q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj or all-linear)")
            }
            return kind
        }
    }

    /// Checks the values a method cannot run with.
    public func validate() throws {
        switch kind {
        case .full:
            break
        case .lora, .qlora:
            guard rank >= 1 else { throw MethodError("rank must be at least 1 (got \(rank))") }
            guard alpha > 0, alpha.isFinite else { throw MethodError("alpha must be positive (got \(alpha))") }
            guard (0..<1).contains(dropout) else { throw MethodError("dropout must be in [0, 1) (got \(dropout))") }
            guard !resolvedTargets.isEmpty else { throw MethodError("no target modules") }
        case .ia3:
            guard !resolvedTargets.isEmpty else { throw MethodError("no target modules") }
        }
    }
}

/// A method configuration that cannot run.
public struct MethodError: Error, CustomStringConvertible, Equatable {
    public let description: String
    public init(_ description: String) { self.description = description }
}
