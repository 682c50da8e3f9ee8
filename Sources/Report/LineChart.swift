// LineChart: what a figure shows — series of (x, y) points with an optional
// band around each — independent of how it is drawn.
import Foundation

/// One point of a series: the line goes through `y`; the band spans `low...high`.
public struct ChartPoint: Sendable, Equatable {
    public var x: Double
    public var y: Double
    public var low: Double
    public var high: Double
}

/// One line of a chart and its legend entry.
public struct ChartSeries: Sendable, Equatable {
    /// Identifies the series in the SVG (`data-series`), e.g. the condition.
    public var name: String
    /// The legend's text (shortened when long).
    public var legend: String
    /// A second, smaller legend line, e.g. "running: epoch 12 of 30".
    public var legendDetail: String?
    public var points: [ChartPoint]
    /// More points may come: the last point is marked with an open circle.
    public var partial: Bool
}

/// A line chart with a legend.
public struct LineChart: Sendable, Equatable {
    public var title: String
    /// Axis titles with units, e.g. "epoch", "seconds".
    public var xLabel: String
    public var yLabel: String
    /// Draw y on a base-10 logarithmic axis.
    public var logarithmicY: Bool
    /// Lower and upper values the y axis must include (e.g. 0...1 for accuracy).
    public var yIncludes: [Double]
    public var series: [ChartSeries]
    /// What the shaded bands mean, shown under the legend.
    public var bandNote: String?
}
