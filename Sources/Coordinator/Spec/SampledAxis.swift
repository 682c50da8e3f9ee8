// SampledAxis: a setting whose values are drawn rather than listed (random
// search), and the generator that draws them. The draws happen once, when the
// spec is planned, from the spec's own seed: the values end up in the trials'
// configurations and so in their keys, and planning again — a resumed sweep —
// gives the same trials.
import Foundation
import Trial

/// The distribution of a sampled setting, as written in the spec.
enum SampledAxis: Sendable, Equatable {
    /// A number in [low, high), every value as likely.
    case uniform(low: Float, high: Float)
    /// A number in [low, high) whose logarithm is uniform (learning rates); 0 < low.
    case logUniform(low: Float, high: Float)
    /// An integer in [low, high], both included.
    case int(low: Int, high: Int)
    /// One of the listed values, each as likely.
    case choice([SettingValue])

    /// The names of the distributions as the spec writes them.
    static let names = ["uniform", "log_uniform", "int", "choice"]

    /// How many distinct values it can give; nil: practically unbounded (a number range).
    var distinctValues: Int? {
        switch self {
        case .uniform, .logUniform: nil
        case .int(let low, let high): high - low + 1
        case .choice(let values): values.count
        }
    }

    /// The axis as the spec writes it, for seeding: stable across Swift versions, unlike a reflected description.
    var specText: String {
        switch self {
        case .uniform(let low, let high): "uniform[\(low),\(high)]"
        case .logUniform(let low, let high): "log_uniform[\(low),\(high)]"
        case .int(let low, let high): "int[\(low),\(high)]"
        case .choice(let values): "choice[\(values.map(\.specText).joined(separator: ","))]"
        }
    }

    /// One value from one draw of the generator.
    func value(_ random: inout SplitMix64) -> SettingValue {
        switch self {
        case .uniform(let low, let high):
            return .float(Self.clamp(Float(Double(low) + random.unit() * (Double(high) - Double(low))), low, high))
        case .logUniform(let low, let high):
            let exponent = log(Double(low)) + random.unit() * (log(Double(high)) - log(Double(low)))
            return .float(Self.clamp(Float(exp(exponent)), low, high))
        case .int(let low, let high):
            return .int(low + Int(random.below(UInt64(high - low) + 1)))
        case .choice(let values):
            return values[Int(random.below(UInt64(values.count)))]
        }
    }

    /// Rounding to Float may step just outside the range; the bounds are the user's promise.
    private static func clamp(_ v: Float, _ low: Float, _ high: Float) -> Float { min(max(v, low), high) }
}

/// The spec's `sampling` member: how many points to draw and from which seed.
struct SamplingSettings: Sendable, Equatable {
    var samples: Int
    var seed: UInt64
}

extension SampledAxis {
    /// The points of a condition's sampled axes: `samples` draws of every axis
    /// (in the order given), without repeating a point. The generator is seeded
    /// from the sweep's seed and the axes' own description, not from the
    /// condition's name or place, so renaming or reordering conditions keeps
    /// their trials, and conditions sampling the same axes get the same points.
    /// Each point takes its draws in turn, so raising `samples` keeps the
    /// earlier points. Nil when the axes cannot give that many distinct points.
    static func points(_ axes: [(setting: TrialSetting, axis: SampledAxis)], sampling: SamplingSettings)
        -> [[(setting: TrialSetting, value: SettingValue)]]? {
        let space = axes.reduce(Optional(1)) { total, axis in
            guard let total, let count = axis.axis.distinctValues else { return nil }
            let (product, overflow) = total.multipliedReportingOverflow(by: count)
            return overflow ? nil : product
        }
        if let space, space < sampling.samples { return nil }
        let description = axes.map { "\($0.setting.rawValue)=\($0.axis.specText)" }.joined(separator: ";")
        var random = SplitMix64(seed: sampling.seed ^ Self.fnv1a(description))
        var points: [[(setting: TrialSetting, value: SettingValue)]] = []
        var seen: Set<String> = []
        // A continuous range repeats a point almost never, a small discrete one often: redraw, boundedly.
        var draws = 0
        while points.count < sampling.samples, draws < sampling.samples * 1000 {
            draws += 1
            let point = axes.map { (setting: $0.setting, value: $0.axis.value(&random)) }
            guard seen.insert(point.map(\.value.specText).joined(separator: ";")).inserted else { continue }
            points.append(point)
        }
        return points.count == sampling.samples ? points : nil
    }

    /// FNV-1a over UTF-8: a stable hash (Swift's `Hasher` is seeded per process).
    static func fnv1a(_ text: String) -> UInt64 {
        text.utf8.reduce(0xCBF2_9CE4_8422_2325) { ($0 ^ UInt64($1)) &* 0x0000_0100_0000_01B3 }
    }
}

extension SettingValue {
    /// The value in a stable textual form, for seeding and telling points apart.
    var specText: String {
        switch self {
        case .int(let v): "\(v)"
        case .float(let v): "\(v)"
        case .bool(let v): "\(v)"
        case .text(let v): v.debugDescription
        case .targets(let v): v.map(\.rawValue).joined(separator: "+")
        case .schedule(let v): v.rawValue
        case .precision(let v): v.rawValue
        case .epochs(let v): "[" + v.map(String.init).joined(separator: ",") + "]"
        }
    }
}

extension TrialSetting {
    /// The setting's kind of value in words, for messages about distributions.
    var kindDescription: String {
        switch kind {
        case .integer: "an integer"
        case .number: "a number"
        case .boolean: "true or false"
        case .targets: "a list of modules"
        case .schedule: "a schedule name"
        case .precision: "a precision name"
        case .epochs: "a list of epochs"
        case .path: "a path"
        }
    }
}

extension TrialSetting.Kind {
    var isInteger: Bool { if case .integer = self { true } else { false } }
    var isEpochList: Bool { if case .epochs = self { true } else { false } }
}

extension JSONValue {
    var isArray: Bool { if case .array = self { true } else { false } }
}
