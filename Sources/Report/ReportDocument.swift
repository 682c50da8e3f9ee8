// ReportDocument: the report's content as headings, paragraphs, tables and
// figures, built once and rendered by both the HTML and the Markdown writer.
import Foundation

/// A table of plain-text cells.
public struct ReportTable: Sendable, Equatable {
    public var headers: [String]
    public var rows: [[String]]
    /// Columns aligned right (numbers).
    public var numericColumns: Set<Int> = []
    /// The column holding claim verdicts, which HTML colours.
    public var verdictColumn: Int?
}

/// One piece of the report, in reading order.
public enum ReportBlock: Sendable, Equatable {
    case heading(String, level: Int)
    case paragraph(String)
    case table(ReportTable)
    case figure(ReportFigure)
}

/// The whole report, ready to be rendered.
public struct ReportDocument: Sendable, Equatable {
    public var title: String
    public var blocks: [ReportBlock]

    /// The report of `report`, stamped with `generated`.
    public init(_ report: RunReport, generated: Date) {
        let sweeps = report.snapshot.sweepNames.joined(separator: ", ")
        title = "FactSweep report" + (sweeps.isEmpty ? "" : ": \(sweeps)")
        var blocks: [ReportBlock] = [.paragraph(Self.overview(report, generated: generated))]
        blocks += ReportModels.blocks(report.snapshot.trials)
        guard !report.snapshot.epochs.isEmpty else {
            blocks.append(.paragraph(report.snapshot.trials.isEmpty
                ? "This run has no trials yet: add a sweep (factsweep run) and make the report again."
                : "No epoch has been recorded yet: the figures and tables appear once workers report their first epochs."))
            self.blocks = blocks
            return
        }
        if report.conditions.contains(where: \.isPartial) {
            blocks.append(.paragraph("The sweep is still running: curves of running conditions end at their latest "
                + "epoch (open circle), and where only some seeds have reached an epoch, its statistics are over those seeds."))
        }
        blocks.append(.heading("Figures", level: 2))
        blocks += report.figures.map { .figure($0) }
        blocks.append(.heading("Summary per condition", level: 2))
        blocks.append(.table(ReportTables.summary(report.conditions)))
        if let stopped = ReportTables.stopped(report.snapshot.trials, lines: ConditionAggregate.lineNames(report.conditions)) {
            blocks.append(.heading("Trials stopped by a stopping rule", level: 3))
            blocks.append(.table(stopped))
            blocks.append(.paragraph("A stopped trial keeps the epochs it recorded: its curve ends at the epoch the rule "
                + "stopped it, and the means at later epochs are over the trials that went on."))
        }
        blocks.append(.paragraph("Final values are each trial's last recorded (or last evaluated) epoch, "
            + "mean (min–max) over its trials; epochs to 0.9 accuracy read the mean curve; "
            + "seconds per epoch are cumulative training seconds over epochs, evaluation excluded."))
        blocks.append(.heading("The study's claims", level: 2))
        let which: String
        if let groups = report.claimGroups {
            // The arms crossed with another axis: the claims once per value, each on that value's lines.
            for group in groups {
                blocks.append(.heading("Lines with \(group.label)", level: 3))
                blocks.append(.table(ReportTables.claims(group.claims)))
            }
            which = " Every arm has a line with each of " + groups.map(\.label).joined(separator: "; ")
                + ": the claims are checked on each set of lines apart."
        } else {
            blocks.append(.table(ReportTables.claims(report.claims)))
            let read = StudyClaims.linesReadAmongSeveral(report.conditions)
            which = read.isEmpty ? "" : " Where an arm has several lines, the claims read its first: "
                + read.joined(separator: "; ") + "."
        }
        blocks.append(.paragraph("Conditions are matched to the study's arms by method, rank and alpha.\(which) Plateaus are the "
            + "mean of a mean curve's last \(StudyClaims.plateauPoints) evaluations and need at least "
            + "\(StudyClaims.minimumEpochs) epochs."))
        blocks.append(.heading("Forgetting: perplexity on held-out text", level: 2))
        blocks += ReportTables.forgetting(report.conditions, storesSummaries: report.snapshot.storesSummaries)
        blocks.append(.heading("Size and memory per condition", level: 2))
        blocks += ReportTables.memory(report.conditions, storesSummaries: report.snapshot.storesSummaries)
        blocks.append(.heading("Answers at each condition's last evaluation", level: 2))
        blocks += ReportTables.answers(report.conditions, report.snapshot.lastAnswers)
        self.blocks = blocks
    }

    static func overview(_ report: RunReport, generated: Date) -> String {
        let trials = report.snapshot.trials
        var counts: [String: Int] = [:]
        for trial in trials { counts[trial.status, default: 0] += 1 }
        let order = ["done", "running", "stale", "pending", "paused", "failed", "diverged", "cancelled", "stopped"]
        let statuses = order.compactMap { status in counts[status].map { "\($0) \(status)" } }.joined(separator: ", ")
        let stamp = ISO8601DateFormatter().string(from: generated)
        return "Run database \(report.snapshot.path), read \(stamp): \(report.conditions.count) conditions, "
            + "\(trials.count) trials" + (statuses.isEmpty ? "" : " (\(statuses))")
            + ", \(report.snapshot.epochs.count) epoch rows."
    }
}
