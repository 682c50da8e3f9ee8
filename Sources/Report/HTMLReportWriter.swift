// HTMLReportWriter: the report as one self-contained HTML file — inline CSS
// and inline SVG figures, no scripts, nothing fetched from the network.
import Foundation

public enum HTMLReportWriter {
    static let style = """
        body { font-family: system-ui, -apple-system, 'Segoe UI', Roboto, Helvetica, Arial, sans-serif;
               color: #222; margin: 24px auto; max-width: 1180px; padding: 0 16px; line-height: 1.45; }
        h1 { font-size: 1.6em; margin-bottom: 0.2em; }
        h2 { font-size: 1.3em; margin-top: 1.8em; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
        h3 { font-size: 1.05em; margin-top: 1.4em; }
        figure { margin: 16px 0 28px; }
        figure svg { max-width: 100%; height: auto; display: block; }
        figcaption { color: #555; font-size: 0.92em; margin-top: 4px; }
        table { border-collapse: collapse; margin: 8px 0 12px; font-size: 0.92em; }
        th, td { border: 1px solid #d0d0d0; padding: 4px 8px; vertical-align: top; text-align: left; }
        th { background: #f3f3f3; }
        td.number { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
        td.holds { background: #dcefff; font-weight: 600; }
        td.differs { background: #ffe7c7; font-weight: 600; }
        td.not-measured { background: #eeeeee; color: #555; }
        p { max-width: 60em; }
        """

    public static func html(_ document: ReportDocument) -> String {
        var out = """
            <!DOCTYPE html>
            <html lang="en">
            <head>
            <meta charset="utf-8">
            <meta name="viewport" content="width=device-width, initial-scale=1">
            <title>\(escape(document.title))</title>
            <style>
            \(style)
            </style>
            </head>
            <body>
            <h1>\(escape(document.title))</h1>

            """
        for block in document.blocks {
            switch block {
            case let .heading(text, level):
                out += "<h\(level)>\(escape(text))</h\(level)>\n"
            case let .paragraph(text):
                out += "<p>\(escape(text))</p>\n"
            case let .table(table):
                out += self.table(table)
            case let .figure(figure):
                out += "<figure>\n\(inline(SVGChartWriter.svg(figure.chart)))<figcaption>\(escape(figure.caption))</figcaption>\n</figure>\n"
            }
        }
        return out + "</body>\n</html>\n"
    }

    /// SVG inside HTML needs no namespace declaration: the HTML parser puts
    /// `<svg>` in the SVG namespace, and the page keeps no URL of any kind.
    static func inline(_ svg: String) -> String {
        svg.replacingOccurrences(of: " xmlns=\"http://www.w3.org/2000/svg\"", with: "")
    }

    static func table(_ table: ReportTable) -> String {
        var out = "<table>\n<thead><tr>" + table.headers.map { "<th>\(escape($0))</th>" }.joined() + "</tr></thead>\n<tbody>\n"
        for row in table.rows {
            out += "<tr>"
            for (column, cell) in row.enumerated() {
                var classes: [String] = []
                if table.numericColumns.contains(column) { classes.append("number") }
                if column == table.verdictColumn { classes.append(cell.replacingOccurrences(of: " ", with: "-")) }
                out += (classes.isEmpty ? "<td>" : "<td class=\"\(classes.joined(separator: " "))\">") + escape(cell) + "</td>"
            }
            out += "</tr>\n"
        }
        return out + "</tbody>\n</table>\n"
    }

    static func escape(_ text: String) -> String { SVGChartWriter.escape(text) }
}
