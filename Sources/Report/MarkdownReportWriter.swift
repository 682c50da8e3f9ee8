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

    /// A table row; pipes and line breaks inside cells would break the table. A line break is "\r\n", "\n"
    /// or a lone "\r" (CommonMark ends a line at each), and becomes one space. Done scalar by scalar: a
    /// pipe or a break followed by a combining mark is one `Character` that equals neither.
    static func row(_ cells: [String]) -> String {
        let escaped = cells.map { cell in
            var out = String.UnicodeScalarView()
            var afterCarriageReturn = false
            for scalar in cell.unicodeScalars {
                switch scalar {
                case "|": out.append(contentsOf: "\\|".unicodeScalars)
                case "\r": out.append(" ")
                case "\n" where afterCarriageReturn: break
                case "\n": out.append(" ")
                default: out.append(scalar)
                }
                afterCarriageReturn = scalar == "\r"
            }
            return String(out)
        }
        return "| " + escaped.joined(separator: " | ") + " |"
    }
}
