// StudyArm: the five arms of "Simple Fact Learning by SLMs", recognised by
// method, rank and alpha — never by a condition's name, which a spec chooses freely.
import Foundation

/// An arm of the study whose claims the report checks.
public enum StudyArm: String, Sendable, CaseIterable {
    case full, loraRank4, loraRank8, qloraRank8, ia3

    /// How the study names it.
    public var label: String {
        switch self {
        case .full: "full fine-tuning"
        case .loraRank4: "LoRA r=4 α=16"
        case .loraRank8: "LoRA r=8 α=32"
        case .qloraRank8: "QLoRA r=8 α=32"
        case .ia3: "IA³"
        }
    }

    /// The arm with these settings, or nil for settings outside the study.
    public init?(method: String, rank: Int?, alpha: Double?) {
        switch (method, rank, alpha) {
        case ("full", _, _): self = .full
        case ("ia3", _, _): self = .ia3
        case ("lora", 4?, 16?): self = .loraRank4
        case ("lora", 8?, 32?): self = .loraRank8
        case ("qlora", 8?, 32?): self = .qloraRank8
        default: return nil
        }
    }
}
