// ReportNumber: how numbers read in tables, legends and claims — a few
// significant digits, never "0.000199999995".
import Foundation

enum ReportNumber {
    /// A value with `digits` decimals.
    static func fixed(_ value: Double, _ digits: Int) -> String {
        String(format: "%.\(digits)f", value)
    }

    /// Short and exact enough: 2e-4 → "0.0002", 5e-5 → "0.00005", 32 → "32".
    static func compact(_ value: Double) -> String {
        if value == value.rounded(), abs(value) < 1e15 { return String(Int64(value)) }
        if abs(value) >= 1e-6 {
            var text = String(format: "%.8f", value)
            while text.hasSuffix("0") { text.removeLast() }
            return text
        }
        return String(format: "%.3g", value)
    }

    /// `digits` significant digits, for values spanning decades (losses): "0.0458", "2.3e-05".
    static func significant(_ value: Double, _ digits: Int = 3) -> String {
        String(format: "%.\(digits)g", value)
    }

    /// "0.934 (0.921–0.947)": mean (min–max) over trials, or the mean alone
    /// when the trials agree to the digits shown.
    static func spread(_ spread: SeedSpread?, _ format: (Double) -> String) -> String {
        guard let spread else { return "—" }
        let (mean, low, high) = (format(spread.mean), format(spread.min), format(spread.max))
        return low == high ? mean : "\(mean) (\(low)–\(high))"
    }

    static func spread(_ spread: SeedSpread?, _ digits: Int) -> String {
        self.spread(spread) { fixed($0, digits) }
    }

    /// Bytes in binary units: "512.0 MiB".
    static func bytes(_ value: Double) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB"]
        var scaled = value
        var unit = 0
        while scaled >= 1024, unit < units.count - 1 { scaled /= 1024; unit += 1 }
        return unit == 0 ? "\(Int(scaled)) B" : "\(fixed(scaled, 1)) \(units[unit])"
    }

    /// Counts with thousands separators: 1,234,567.
    static func count(_ value: Double) -> String {
        let digits = String(Int64(value.rounded()))
        var grouped = ""
        for (index, character) in digits.reversed().enumerated() {
            if index > 0, index % 3 == 0, character != "-" { grouped.append(",") }
            grouped.append(character)
        }
        return String(grouped.reversed())
    }
}
