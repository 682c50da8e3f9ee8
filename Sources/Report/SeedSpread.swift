// SeedSpread: a metric over the seeds of one condition — mean, extremes and
// standard deviation — the numbers behind every line, band and table cell.
import Foundation

/// Summary statistics of one value across a condition's trials (seeds).
public struct SeedSpread: Sendable, Equatable {
    public var mean: Double
    public var min: Double
    public var max: Double
    /// Sample standard deviation (n − 1); 0 for a single value.
    public var standardDeviation: Double
    /// How many trials contributed.
    public var count: Int

    /// nil for no values: "not measured" is not zero.
    public init?(_ values: [Double]) {
        guard let low = values.min(), let high = values.max() else { return nil }
        let mean = values.reduce(0, +) / Double(values.count)
        let squares = values.reduce(0) { $0 + ($1 - mean) * ($1 - mean) }
        self.mean = mean
        self.min = low
        self.max = high
        standardDeviation = values.count > 1 ? (squares / Double(values.count - 1)).squareRoot() : 0
        count = values.count
    }
}

/// One epoch of a condition's curve.
public struct CurvePoint: Sendable, Equatable {
    public var epoch: Int
    public var spread: SeedSpread
}

/// The per-epoch metrics a report draws.
public enum ReportMetric: String, Sendable, CaseIterable {
    case accuracy, loss, trainSeconds

    func value(of row: ReportEpoch) -> Double? {
        switch self {
        case .accuracy: row.accuracy
        case .loss: row.loss
        case .trainSeconds: row.trainSeconds
        }
    }
}
