// ReportFigures: the study's three figures — accuracy, training loss and
// cumulative training time per epoch, one line per condition.
import Foundation

/// A figure of the report: its chart and the file it is written to.
public struct ReportFigure: Sendable, Equatable {
    /// File name of the standalone SVG, e.g. "accuracy.svg".
    public var fileName: String
    public var chart: LineChart
    /// A sentence under the figure.
    public var caption: String
}

public enum ReportFigures {
    /// The bands are the range of the seeds, not a deviation: with two or
    /// three seeds per condition the extremes are what there is to show.
    static let bandNote = "shaded: min–max across seeds; line: mean"

    /// Loss spanning more than this ratio (two decades) is drawn on a log axis.
    static let logarithmicSpan = 100.0

    public static func figures(_ conditions: [ConditionAggregate]) -> [ReportFigure] {
        let shown = conditions.filter { $0.lastEpoch > 0 }
        let lossValues = shown.flatMap { $0.loss.flatMap { [$0.spread.min, $0.spread.max] } }.filter { $0 > 0 }
        let logLoss = (lossValues.max() ?? 1) / (lossValues.min() ?? 1) > logarithmicSpan
        return [
            ReportFigure(fileName: "accuracy.svg",
                         chart: chart("Evaluation accuracy per epoch", y: "mean cosine similarity", metric: .accuracy,
                                      shown, includes: [0, 1]),
                         caption: "Accuracy: mean cosine similarity of generated and reference answers (MiniLM), per evaluated epoch."),
            ReportFigure(fileName: "loss.svg",
                         chart: chart("Training loss per epoch", y: logLoss ? "loss (log scale)" : "loss", metric: .loss,
                                      shown, includes: logLoss ? [] : [0], logarithmic: logLoss),
                         caption: "Mean training loss of each epoch" + (logLoss ? "; the axis is logarithmic (the loss spans more than two decades)." : ".")),
            ReportFigure(fileName: "runtime.svg",
                         chart: chart("Cumulative training time", y: "seconds", metric: .trainSeconds, shown, includes: [0]),
                         caption: "Training time of a trial up to each epoch, evaluation excluded."),
        ]
    }

    static func chart(_ title: String, y: String, metric: ReportMetric, _ conditions: [ConditionAggregate],
                      includes: [Double], logarithmic: Bool = false) -> LineChart {
        let series = conditions.map { condition in
            ChartSeries(name: condition.condition, legend: condition.condition, legendDetail: detail(condition),
                        points: condition.curve(metric).map {
                            ChartPoint(x: Double($0.epoch), y: $0.spread.mean, low: $0.spread.min, high: $0.spread.max)
                        },
                        partial: condition.isPartial)
        }
        return LineChart(title: title, xLabel: "epoch", yLabel: y, logarithmicY: logarithmic, yIncludes: includes,
                         series: series, bandNote: bandNote)
    }

    /// The legend's second line: how far a running condition is, or its seeds.
    static func detail(_ condition: ConditionAggregate) -> String {
        guard !condition.isPartial else { return "running: \(condition.doneTrials)/\(condition.trials.count) trials done" }
        return condition.trials.count == 1 ? "1 seed" : "\(condition.trials.count) seeds"
    }
}
