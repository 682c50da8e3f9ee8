// `factsweep report`: a run's figures, tables and the study's claims as
// report.html, report.md and metrics.csv — from its database, while it runs or after.
import ArgumentParser
import Coordinator
import Report
import Store
import Foundation
import Logging

struct ReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Write a run's report: report.html (self-contained), report.md with SVG figures, metrics.csv.",
        discussion: "Reads the run database read-only, so it is safe while the sweep runs; running conditions are drawn as far as they go.")

    @Argument(help: ArgumentHelp("The run directory (holding run.db) or the run database file.", valueName: "run"))
    var location: String

    @Option(name: .long, help: "The folder to write (default: RUN/report, or report/ beside a database file).")
    var out: String?

    func run() throws {
        let logger = Logger(label: "factsweep.report")
        let report = try RunReport.read(location, logger: logger)
        let files = try report.write(to: URL(fileURLWithPath: out ?? defaultOut), logger: logger)
        if report.snapshot.trials.isEmpty {
            print("The run has no trials yet; wrote an empty report.")
        } else if report.snapshot.epochs.isEmpty {
            print("No epoch recorded yet; wrote a report without figures.")
        }
        // Once per value of an axis crossing every arm (as the report's tables), else on each arm's first line.
        let groups = report.claimGroups ?? [ClaimGroup(label: "", claims: report.claims)]
        for group in groups {
            let lines = group.label.isEmpty ? "" : " (lines with \(group.label))"
            for verdict in [ClaimVerdict.holds, .differs, .notMeasured] {
                let numbers = group.claims.filter { $0.verdict == verdict }.map { String($0.number) }
                if !numbers.isEmpty { print("claims\(lines) \(verdict.rawValue): \(numbers.joined(separator: ", "))") }
            }
        }
        print("wrote \(files.html.path)")
        print("wrote \(files.markdown.path) (figures: \(files.figures.map(\.lastPathComponent).joined(separator: ", ")))")
        print("wrote \(files.csv.path)")
    }

    private var defaultOut: String {
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: location, isDirectory: &isDirectory), isDirectory.boolValue {
            return (location as NSString).appendingPathComponent("report")
        }
        return ((location as NSString).deletingLastPathComponent as NSString).appendingPathComponent("report")
    }
}
