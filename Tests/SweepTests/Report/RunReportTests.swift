// The report end to end: a synthetic study in a real run database, read
// back into report.html, report.md, metrics.csv and three SVG figures.
import Foundation
import Logging
import Testing
import TestSupport
@testable import Report
@testable import Store

@Suite struct RunReportTests {
    let logger = Logger(label: "test.report") { _ in SwiftLogNoOpLogHandler() }

    /// A report and the temporary folder that holds its run (kept alive with it).
    struct WrittenReport {
        let folder: TemporaryDirectory
        let report: RunReport
        let files: ReportFiles
    }

    /// The synthetic run and its report in a temporary folder — or, when
    /// `keep` and $FACTSWEEP_REPORT_KEEP names a folder, in that run directory,
    /// to look at it (scripts/check-report.sh; docs/report.md).
    func syntheticReport(keep: Bool = false) throws -> WrittenReport {
        let folder = try TemporaryDirectory()
        var run = folder.url
        if keep, let kept = ProcessInfo.processInfo.environment["FACTSWEEP_REPORT_KEEP"] {
            run = URL(fileURLWithPath: kept)
            try FileManager.default.createDirectory(at: run, withIntermediateDirectories: true)
        }
        try SyntheticStudy.write(into: run)
        let report = try RunReport.read(run.path, logger: logger)
        let files = try report.write(to: run.appendingPathComponent("report"), logger: logger)
        return WrittenReport(folder: folder, report: report, files: files)
    }

    @Test func writesEveryFileOfTheReport() throws {
        let written = try syntheticReport(keep: true)
        let files = written.files
        for url in [files.html, files.markdown, files.csv] + files.figures {
            #expect(FileManager.default.fileExists(atPath: url.path), "missing \(url.lastPathComponent)")
        }
        #expect(files.figures.map(\.lastPathComponent) == ["accuracy.svg", "loss.svg", "runtime.svg"])
        let markdown = try String(contentsOf: files.markdown, encoding: .utf8)
        for figure in files.figures { #expect(markdown.contains("](\(figure.lastPathComponent))")) }
    }

    /// The page in a real headless browser (Debian's chromium, installed by
    /// scripts/setup.sh for the tests): scripts/check-report.sh takes a
    /// screenshot and checks it is the full page with the charts' colours drawn.
    /// A missing browser fails the test.
    @Test func htmlRendersInAHeadlessBrowser() throws {
        let written = try syntheticReport()
        let script = TestPaths.repositoryRoot.appendingPathComponent("scripts/check-report.sh")
        let result = try Command.run(URL(fileURLWithPath: "/bin/bash"),
                                     [script.path, written.files.html.deletingLastPathComponent().path,
                                      written.folder.file("screenshot.png").path], timeout: 300)
        let text = result.stdout + result.stderr
        #expect(result.status == 0, "\(text)")
        #expect(text.contains("screenshot check passed"), "\(text)")
    }

    @Test func htmlIsSelfContained() throws {
        let written = try syntheticReport()
        let files = written.files
        let html = try String(contentsOf: files.html, encoding: .utf8)
        #expect(!html.contains("http://") && !html.contains("https://"))
        for external in [" src=", "<script", "<link", "@import", "url("] {
            #expect(!html.lowercased().contains(external), "HTML contains \(external)")
        }
        #expect(html.components(separatedBy: "<svg").count - 1 == 3)
        #expect(html.contains("<style>"))
    }

    @Test func everyFigureParsesAndShowsEveryCondition() throws {
        let written = try syntheticReport()
        let (report, files) = (written.report, written.files)
        let conditions = report.conditions.map(\.condition)
        #expect(conditions.count == 5)
        let expectedY = ["accuracy.svg": "mean cosine similarity", "loss.svg": "loss (log scale)", "runtime.svg": "seconds"]
        for url in files.figures {
            let text = try String(contentsOf: url, encoding: .utf8)
            let svg = try #require(SVGInspector.parse(text), "\(url.lastPathComponent) is not well-formed XML")
            #expect(svg.all("text", "class", "x-label").map(\.text) == ["epoch"])
            #expect(svg.all("text", "class", "y-label").map(\.text) == [expectedY[url.lastPathComponent]])
            let legend = svg.all("text", "class", "legend-entry").compactMap { $0.attributes["data-series"] }
            #expect(legend == conditions, "legend of \(url.lastPathComponent)")
            let lines = svg.all("path", "class", "series").compactMap { $0.attributes["data-series"] }
            #expect(lines == conditions, "lines of \(url.lastPathComponent)")
            // Bands where seeds disagree; every line drawn as a polyline over its epochs.
            #expect(svg.all("path", "class", "band").count == conditions.count)
            // Tick labels on both axes.
            #expect(svg.all("text").filter { $0.text == "10" || $0.text == "20" || $0.text == "30" }.count >= 3)
            // Long names are shortened so that the legend fits beside the plot.
            #expect(svg.all("text", "class", "legend-entry").allSatisfy { $0.text.count <= SVGChartWriter.legendCharacters })
        }
    }

    @Test func partialConditionsAreDrawnAsFarAsTheyGo() throws {
        let written = try syntheticReport()
        let (report, files) = (written.report, written.files)
        let qlora = try #require(report.conditions.first { $0.condition == "qlora-r8" })
        #expect(qlora.isPartial && qlora.doneTrials == 0)
        #expect(qlora.accuracy.map(\.epoch) == Array(1...20))
        #expect(qlora.accuracy.last?.spread.count == 1 && qlora.accuracy.first?.spread.count == 2)
        #expect(report.conditions.filter(\.isPartial).map(\.condition) == ["qlora-r8"])
        let svg = try #require(SVGInspector.parse(try String(contentsOf: files.figures[0], encoding: .utf8)))
        #expect(svg.all("text").contains { $0.text == "running: 0/2 trials done" })
        #expect(svg.all("circle").count == 1)  // the open end of the running curve
    }

    @Test func csvHasOneRowPerEpoch() throws {
        let written = try syntheticReport()
        let (report, files) = (written.report, written.files)
        let lines = try String(contentsOf: files.csv, encoding: .utf8).split(separator: "\r\n")
        #expect(lines.first == Substring(MetricsCSV.columns.joined(separator: ",")))
        #expect(lines.count - 1 == SyntheticStudy.epochRows())
        #expect(report.snapshot.epochs.count == SyntheticStudy.epochRows())
        let row = try #require(lines.first { $0.hasPrefix("lora-r4-s1,lora-r4,lora,4,16.0,0.001,1,3,") })
        #expect(row.split(separator: ",", omittingEmptySubsequences: false).count == MetricsCSV.columns.count)
        // The long condition name has a comma and is quoted.
        #expect(lines.contains { $0.contains("\"IA³ scaling vectors on k, v and down projections\"") })
    }

    @Test func claimsAreMarkedFromTheMeasurements() throws {
        let written = try syntheticReport()
        let (report, files) = (written.report, written.files)
        let verdicts = report.claims.map(\.verdict)
        #expect(verdicts == [.holds, .holds, .holds, .differs, .holds, .differs, .holds], "\(report.claims)")
        #expect(report.claims[0].measured.contains("epoch 2"))
        #expect(report.claims[3].measured.contains("difference -0.0"))
        #expect(report.claims[5].measured.contains("→ 2.1"))
        let html = try String(contentsOf: files.html, encoding: .utf8)
        #expect(html.components(separatedBy: "<td class=\"differs\">differs</td>").count - 1 == 2)
        #expect(html.components(separatedBy: "<td class=\"holds\">holds</td>").count - 1 == 5)
    }

    /// The header names the model each condition trained, from the workers' summaries; QLoRA's
    /// NF4 base is a row of its own, "—" while none of its trials has finished.
    @Test func headerNamesTheModelOfEachCondition() throws {
        let written = try syntheticReport()
        let markdown = try String(contentsOf: written.files.markdown, encoding: .utf8)
        let model = try #require(markdown.range(of: "## Model"))
        let figures = try #require(markdown.range(of: "## Figures"))
        #expect(model.upperBound < figures.lowerBound, "the model table comes before the figures")
        #expect(markdown.contains("| conditions | model file | name | weights: stored, as trained | parameters |"))
        #expect(markdown.contains("| full, lora-r4, lora-r8, IA³ scaling vectors on k, v and down projections | "
            + "\(SyntheticStudy.modelFile) | \(SyntheticStudy.modelName) | \(SyntheticStudy.modelWeights) | 134,515,008 |"), "\(markdown)")
        #expect(markdown.contains("| qlora-r8 | smollm2 | — | — | — |"))
        #expect(markdown.contains("Quantised weights are dequantised to Float32 before training"))
    }

    @Test func tablesShowSummaryForgettingMemoryAndAnswers() throws {
        let written = try syntheticReport()
        let (report, files) = (written.report, written.files)
        let full = try #require(report.conditions.first)
        #expect(full.firstEpoch(.accuracy, where: { $0 >= 0.9 }) == 2)
        #expect(abs((full.trainSecondsPerEpoch?.mean ?? 0) - 3.0) < 1e-9)
        let markdown = try String(contentsOf: files.markdown, encoding: .utf8)
        #expect(markdown.contains("| full | full, lr 0.00005 | 2/2 | 30/30 |"))
        #expect(markdown.contains("| qlora-r8 | qlora r=8 α=32, lr 0.001 | 0/2 | 20/30 |"))
        #expect(markdown.contains("17.90"))  // perplexity before, from the stored summaries
        #expect(markdown.contains("134,515,008") && markdown.contains("1.3 GiB"))
        #expect(markdown.contains("### full: seed 1, epoch 30 of 30"))
        #expect(markdown.contains("### qlora-r8: seed 1, epoch 20 of 30"))
        #expect(markdown.contains("| In which year was Elena Marsh born? | Elena Marsh was born in 1987. | Elena Marsh was born in 1987. |"))
    }
}
