// ChartScale: maps data values to a chart's axis — linear with "nice" ticks
// (1, 2, 5 × 10^k) or base-10 logarithmic with a tick per decade.
import Foundation

/// One axis: its domain, its ticks and how a value maps onto it.
struct ChartScale: Sendable, Equatable {
    enum Kind: Sendable, Equatable { case linear, log10 }

    var kind: Kind
    var lower: Double
    var upper: Double
    var ticks: [Double]
    /// Decimals for linear tick labels, from the tick step.
    var decimals: Int

    /// A linear axis covering `low...high` with about `count` ticks at round
    /// values; `integers` keeps ticks on whole numbers (epochs).
    static func linear(_ low: Double, _ high: Double, count: Int = 6, integers: Bool = false) -> ChartScale {
        var (low, high) = (low, high)
        if !(high > low) { (low, high) = high == 0 ? (0, 1) : (min(0, low), max(0, high) * 1.1 + (high < 0 ? 1 : 0)) }
        var step = niceStep((high - low) / Double(max(count - 1, 1)))
        if integers { step = max(1, step.rounded()) }
        let first = (low / step).rounded(.down) * step
        let last = (high / step).rounded(.up) * step
        // Ticks as whole multiples of the step, divided rather than multiplied
        // when the step is below 1, so that 3 × 0.2 reads 0.6, not 0.6000000000000001.
        let inverse = step < 1 ? (1 / step).rounded() : 1
        let ticks = stride(from: first, through: last + step / 2, by: step).map {
            step < 1 ? ($0 * inverse).rounded() / inverse : ($0 / step).rounded() * step
        }
        let decimals = step >= 1 ? 0 : Int((-Foundation.log10(step)).rounded(.up))
        return ChartScale(kind: .linear, lower: first, upper: last, ticks: ticks, decimals: decimals)
    }

    /// A logarithmic axis from the decade below `low` to the decade above
    /// `high` (both positive).
    static func log10(_ low: Double, _ high: Double) -> ChartScale {
        let first = Foundation.log10(low).rounded(.down)
        var last = Foundation.log10(high).rounded(.up)
        if last <= first { last = first + 1 }
        let ticks = stride(from: first, through: last, by: 1).map { Foundation.pow(10, $0) }
        return ChartScale(kind: .log10, lower: Foundation.pow(10, first), upper: Foundation.pow(10, last), ticks: ticks,
                          decimals: 0)
    }

    /// 1, 2 or 5 times a power of ten, at least `raw`.
    static func niceStep(_ raw: Double) -> Double {
        guard raw > 0, raw.isFinite else { return 1 }
        let magnitude = Foundation.pow(10, Foundation.log10(raw).rounded(.down))
        let normalised = raw / magnitude
        let factor: Double = normalised <= 1 ? 1 : normalised <= 2 ? 2 : normalised <= 5 ? 5 : 10
        return factor * magnitude
    }

    /// Where `value` falls, from 0 (lower end) to 1 (upper end).
    func fraction(_ value: Double) -> Double {
        switch kind {
        case .linear:
            return (value - lower) / (upper - lower)
        case .log10:
            let (a, b) = (Foundation.log10(lower), Foundation.log10(upper))
            return (Foundation.log10(max(value, .leastNormalMagnitude)) - a) / (b - a)
        }
    }

    /// Whether the axis can show `value` (a log axis cannot show zero).
    func canShow(_ value: Double) -> Bool { value.isFinite && (kind == .linear || value > 0) }

    /// A tick's label: "0.25", "10", "0.001", or "10⁻⁵" on a log axis spanning many decades.
    func label(_ value: Double) -> String {
        switch kind {
        case .linear:
            let text = String(format: "%.\(decimals)f", value)
            return text == "-0" ? "0" : text
        case .log10:
            // One notation per axis: decimals when every tick reads short, powers of ten otherwise.
            let exponents = ticks.map { Int(Foundation.log10($0).rounded()) }
            let exponent = Int(Foundation.log10(value).rounded())
            if exponents.allSatisfy({ (-3...4).contains($0) }) { return ReportNumber.compact(value) }
            return "10" + Self.superscript(exponent)
        }
    }

    static func superscript(_ number: Int) -> String {
        let digits: [Character: Character] = ["0": "⁰", "1": "¹", "2": "²", "3": "³", "4": "⁴", "5": "⁵", "6": "⁶",
                                              "7": "⁷", "8": "⁸", "9": "⁹", "-": "⁻"]
        return String(String(number).map { digits[$0] ?? $0 })
    }
}
