// RunReport: a run's report from its database — read, aggregate, check the
// study's claims — and writing report.html, report.md, metrics.csv and the figures.
import Foundation
import Logging

/// The report of one run, computed from a snapshot of its database.
public struct RunReport: Sendable {
    public var snapshot: RunSnapshot
    public var conditions: [ConditionAggregate]
    /// The claims on each arm's first line.
    public var claims: [ClaimCheck]
    /// The claims once per value of an axis the run crosses the arms with
    /// (f32 and bf16 under a precision axis), where every value has a line
    /// of every arm (`StudyClaims.groups`); nil otherwise.
    public var claimGroups: [ClaimGroup]?
    public var figures: [ReportFigure]

    public init(snapshot: RunSnapshot) {
        self.snapshot = snapshot
        conditions = ConditionAggregate.all(in: snapshot)
        claims = StudyClaims.check(conditions)
        claimGroups = StudyClaims.groups(conditions)
        figures = snapshot.epochs.isEmpty ? [] : ReportFigures.figures(conditions)
    }

    /// Reads the run at `location` (a run directory or its database file).
    public static func read(_ location: String, logger: Logger) throws -> RunReport {
        RunReport(snapshot: try RunSnapshotReader.read(path: RunSnapshotReader.databasePath(for: location), logger: logger))
    }

    /// Writes the report's files into `directory` (created if needed) and
    /// returns where they are.
    @discardableResult
    public func write(to directory: URL, generated: Date = Date(), logger: Logger) throws -> ReportFiles {
        let document = ReportDocument(self, generated: generated)
        let files = ReportFiles(directory: directory, figures: figures.map { directory.appendingPathComponent($0.fileName) })
        do {
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        } catch {
            throw ReportError.cannotWrite(path: directory.path, reason: error.localizedDescription)
        }
        try Self.write(HTMLReportWriter.html(document), to: files.html)
        try Self.write(MarkdownReportWriter.markdown(document), to: files.markdown)
        do {
            try MetricsCSV.write(snapshot, lines: ConditionAggregate.lineNames(conditions), to: files.csv)
        } catch {
            throw ReportError.cannotWrite(path: files.csv.path, reason: error.localizedDescription)
        }
        for (figure, url) in zip(figures, files.figures) {
            try Self.write("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n" + SVGChartWriter.svg(figure.chart), to: url)
        }
        logger.info("report written", metadata: [
            "directory": "\(directory.path)", "conditions": "\(conditions.count)", "epochs": "\(snapshot.epochs.count)",
        ])
        return files
    }

    private static func write(_ text: String, to url: URL) throws {
        do {
            try Data(text.utf8).write(to: url, options: .atomic)
        } catch {
            throw ReportError.cannotWrite(path: url.path, reason: error.localizedDescription)
        }
    }
}

/// Where a report's files are.
public struct ReportFiles: Sendable, Equatable {
    public var directory: URL
    public var html: URL { directory.appendingPathComponent("report.html") }
    public var markdown: URL { directory.appendingPathComponent("report.md") }
    public var csv: URL { directory.appendingPathComponent("metrics.csv") }
    /// The figures' SVG files; none while no epoch is recorded.
    public var figures: [URL]
}
