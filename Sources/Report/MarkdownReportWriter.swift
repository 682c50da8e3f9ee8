// MarkdownReportWriter: the report as Markdown (GitHub tables), its figures
// referenced as SVG files beside it.
import Foundation

public enum MarkdownReportWriter {
    public static func markdown(_ document: ReportDocument) -> String {
        var out = "# \(document.title)\n\n"
        for block in document.blocks {
            switch block {
            case let .heading(text, level):
                out += String(repeating: "#", count: level) + " \(text)\n\n"
            case let .paragraph(text):
                out += text + "\n\n"
            case let .table(table):
                out += self.table(table) + "\n"
            case let .figure(figure):
                out += "![\(figure.chart.title)](\(figure.fileName))\n\n*\(figure.caption)*\n\n"
            }
        }
        return out
    }

    static func table(_ table: ReportTable) -> String {
        let rule = table.headers.indices.map { table.numericColumns.contains($0) ? "---:" : "---" }
        var lines = [row(table.headers), "| " + rule.joined(separator: " | ") + " |"]
        lines += table.rows.map { cells in
            row(cells.enumerated().map { $0.offset == table.verdictColumn ? "**\($0.element)**" : $0.element })
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// A table row; pipes and line breaks inside cells would break the table.
    static func row(_ cells: [String]) -> String {
        let escaped = cells.map {
            $0.replacingOccurrences(of: "|", with: "\\|").replacingOccurrences(of: "\r\n", with: " ")
                .replacingOccurrences(of: "\n", with: " ")
        }
        return "| " + escaped.joined(separator: " | ") + " |"
    }
}
