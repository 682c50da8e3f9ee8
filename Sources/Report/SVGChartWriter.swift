// SVGChartWriter: draws a LineChart as a standalone SVG document — axes with
// tick labels, grid, bands, lines and a legend beside the plot so that no
// text overlaps the data or other text.
import Foundation

public enum SVGChartWriter {
    // Layout, in SVG pixels. Text is 12 px sans-serif, whose characters
    // average under 7 px: widths below are estimated from character counts.
    static let width = 800.0
    static let plotHeight = 320.0
    static let top = 48.0
    static let bottom = 58.0
    static let legendWidth = 220.0
    static let legendGap = 20.0
    static let characterWidth = 7.0
    static let legendCharacters = 26
    static let fontFamily = "system-ui, -apple-system, 'Segoe UI', Roboto, Helvetica, Arial, sans-serif"

    /// The chart as an SVG document (with its XML namespace, so it also
    /// renders as an image file).
    public static func svg(_ chart: LineChart) -> String {
        let xScale = xAxis(chart)
        let yScale = yAxis(chart)
        let tickWidth = Double(yScale.ticks.map { yScale.label($0).count }.max() ?? 1) * characterWidth
        let left = 34 + tickWidth + 10
        let plotRight = width - legendWidth - legendGap
        let legendHeight = legendLines(chart).reduce(0) { $0 + $1.height }
        let height = max(top + plotHeight + bottom, top + legendHeight + 16)
        let plot = PlotArea(left: left, right: plotRight, top: top, bottom: top + plotHeight, x: xScale, y: yScale)

        var out = """
            <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(width))" height="\(Int(height))" \
            viewBox="0 0 \(Int(width)) \(Int(height))" role="img" aria-label="\(escape(chart.title))" \
            font-family="\(escape(fontFamily))" font-size="12">
            <title>\(escape(chart.title))</title>
            <rect x="0" y="0" width="\(Int(width))" height="\(Int(height))" fill="#ffffff"/>
            <text x="\(f(left))" y="24" font-size="15" font-weight="600" fill="#222222">\(escape(chart.title))</text>

            """
        out += axes(chart, plot)
        for (index, series) in chart.series.enumerated() { out += band(series, index, plot) }
        for (index, series) in chart.series.enumerated() { out += line(series, index, plot) }
        out += legend(chart, x: plotRight + legendGap)
        out += "</svg>\n"
        return out
    }

    struct PlotArea {
        var left, right, top, bottom: Double
        var x, y: ChartScale
        func px(_ value: Double) -> Double { left + x.fraction(value) * (right - left) }
        func py(_ value: Double) -> Double { bottom - y.fraction(value) * (bottom - top) }
    }

    static func xAxis(_ chart: LineChart) -> ChartScale {
        let xs = chart.series.flatMap { $0.points.map(\.x) }
        return ChartScale.linear(0, max(xs.max() ?? 1, 1), count: 8, integers: true)
    }

    static func yAxis(_ chart: LineChart) -> ChartScale {
        let values = chart.series.flatMap { $0.points.flatMap { [$0.low, $0.high, $0.y] } }
        if chart.logarithmicY {
            let positive = values.filter { $0 > 0 && $0.isFinite }
            return ChartScale.log10(positive.min() ?? 0.01, positive.max() ?? 1)
        }
        let all = values.filter(\.isFinite) + chart.yIncludes
        return ChartScale.linear(all.min() ?? 0, all.max() ?? 1, count: 6)
    }

    static func axes(_ chart: LineChart, _ plot: PlotArea) -> String {
        var out = "<g class=\"axes\" fill=\"#333333\">\n"
        for tick in plot.y.ticks {
            let y = plot.py(tick)
            out += "<line x1=\"\(f(plot.left))\" y1=\"\(f(y))\" x2=\"\(f(plot.right))\" y2=\"\(f(y))\" stroke=\"#e3e3e3\"/>\n"
            out += "<text x=\"\(f(plot.left - 8))\" y=\"\(f(y + 4))\" text-anchor=\"end\">\(escape(plot.y.label(tick)))</text>\n"
        }
        for tick in plot.x.ticks {
            let x = plot.px(tick)
            out += "<line x1=\"\(f(x))\" y1=\"\(f(plot.bottom))\" x2=\"\(f(x))\" y2=\"\(f(plot.bottom + 5))\" stroke=\"#333333\"/>\n"
            out += "<text x=\"\(f(x))\" y=\"\(f(plot.bottom + 20))\" text-anchor=\"middle\">\(escape(plot.x.label(tick)))</text>\n"
        }
        out += "<path d=\"M\(f(plot.left)) \(f(plot.top))V\(f(plot.bottom))H\(f(plot.right))\" fill=\"none\" stroke=\"#333333\"/>\n"
        let middleX = (plot.left + plot.right) / 2, middleY = (plot.top + plot.bottom) / 2
        out += "<text class=\"x-label\" x=\"\(f(middleX))\" y=\"\(f(plot.bottom + 46))\" text-anchor=\"middle\" font-size=\"13\">"
            + "\(escape(chart.xLabel))</text>\n"
        out += "<text class=\"y-label\" transform=\"translate(16 \(f(middleY))) rotate(-90)\" text-anchor=\"middle\" "
            + "dominant-baseline=\"central\" font-size=\"13\">\(escape(chart.yLabel))</text>\n"
        return out + "</g>\n"
    }

    static func band(_ series: ChartSeries, _ index: Int, _ plot: PlotArea) -> String {
        let points = series.points.filter { plot.y.canShow($0.low) && plot.y.canShow($0.high) }
        guard points.count > 1, points.contains(where: { $0.high > $0.low }) else { return "" }
        let upper = points.map { "\(f(plot.px($0.x))) \(f(plot.py($0.high)))" }
        let lower = points.reversed().map { "\(f(plot.px($0.x))) \(f(plot.py($0.low)))" }
        return "<path class=\"band\" data-series=\"\(escape(series.name))\" d=\"M\(upper.joined(separator: "L"))"
            + "L\(lower.joined(separator: "L"))Z\" fill=\"\(ChartPalette.colour(index))\" fill-opacity=\"0.22\" stroke=\"none\"/>\n"
    }

    static func line(_ series: ChartSeries, _ index: Int, _ plot: PlotArea) -> String {
        let points = series.points.filter { plot.y.canShow($0.y) }
        let colour = ChartPalette.colour(index)
        let dash = ChartPalette.dash(index)
        let coordinates = points.map { "\(f(plot.px($0.x))) \(f(plot.py($0.y)))" }
        var out = "<path class=\"series\" data-series=\"\(escape(series.name))\" d=\"M\(coordinates.joined(separator: "L"))\" "
            + "fill=\"none\" stroke=\"\(colour)\" stroke-width=\"2\" stroke-linejoin=\"round\""
            + (dash.isEmpty ? "" : " stroke-dasharray=\"\(dash)\"") + "/>\n"
        // A single point draws no line; a partial curve's end is marked.
        if let last = points.last, points.count == 1 || series.partial {
            let fill = series.partial ? "#ffffff" : colour
            out += "<circle cx=\"\(f(plot.px(last.x)))\" cy=\"\(f(plot.py(last.y)))\" r=\"4\" fill=\"\(fill)\" "
                + "stroke=\"\(colour)\" stroke-width=\"2\"/>\n"
        }
        return out
    }

    /// One legend row: a series (with its detail line) or the band note.
    struct LegendLine { var height: Double }

    static func legendLines(_ chart: LineChart) -> [LegendLine] {
        chart.series.map { LegendLine(height: $0.legendDetail == nil ? 22 : 36) }
            + (chart.bandNote == nil ? [] : [LegendLine(height: 46)])
    }

    static func legend(_ chart: LineChart, x: Double) -> String {
        var out = "<g class=\"legend\">\n"
        var y = top + 4
        for (index, series) in chart.series.enumerated() {
            let colour = ChartPalette.colour(index)
            let dash = ChartPalette.dash(index)
            out += "<line x1=\"\(f(x))\" y1=\"\(f(y))\" x2=\"\(f(x + 24))\" y2=\"\(f(y))\" stroke=\"\(colour)\" stroke-width=\"3\""
                + (dash.isEmpty ? "" : " stroke-dasharray=\"\(dash)\"") + "/>\n"
            out += "<text class=\"legend-entry\" data-series=\"\(escape(series.name))\" x=\"\(f(x + 32))\" y=\"\(f(y + 4))\" "
                + "fill=\"#222222\">\(escape(shorten(series.legend)))</text>\n"
            if let detail = series.legendDetail {
                out += "<text x=\"\(f(x + 32))\" y=\"\(f(y + 18))\" font-size=\"11\" fill=\"#666666\">"
                    + "\(escape(shorten(detail)))</text>\n"
            }
            y += series.legendDetail == nil ? 22 : 36
        }
        if let note = chart.bandNote {
            out += "<rect x=\"\(f(x))\" y=\"\(f(y - 2))\" width=\"24\" height=\"12\" fill=\"#777777\" fill-opacity=\"0.25\"/>\n"
            for (row, text) in wrap(note, characters: legendCharacters).prefix(3).enumerated() {
                out += "<text x=\"\(f(x + 32))\" y=\"\(f(y + 8 + Double(row) * 14))\" font-size=\"11\" fill=\"#666666\">"
                    + "\(escape(text))</text>\n"
            }
        }
        return out + "</g>\n"
    }

    /// Long legend text ends in "…" so that it stays inside the picture.
    static func shorten(_ text: String) -> String {
        guard text.count > legendCharacters else { return text }
        return String(text.prefix(legendCharacters - 1)).trimmingCharacters(in: .whitespaces) + "…"
    }

    /// Words in lines of at most `characters`.
    static func wrap(_ text: String, characters: Int) -> [String] {
        var lines: [String] = []
        var current = ""
        for word in text.split(separator: " ") {
            if !current.isEmpty, current.count + 1 + word.count > characters {
                lines.append(current)
                current = ""
            }
            current += (current.isEmpty ? "" : " ") + word
        }
        if !current.isEmpty { lines.append(current) }
        return lines.map(shorten)
    }

    static func f(_ value: Double) -> String { String(format: "%.1f", value) }

    /// Text and attribute values escaped for XML (and HTML). It walks Unicode scalars, not `Character`s:
    /// a quote followed by a combining mark (`"` U+0301) is one grapheme cluster, unequal to `"`, and went
    /// out bare, ending an attribute early — and the text comes from outside (a spec's path settings name
    /// chart lines).
    static func escape(_ text: String) -> String {
        var out = String.UnicodeScalarView()
        for scalar in text.unicodeScalars {
            switch scalar {
            case "&": out.append(contentsOf: "&amp;".unicodeScalars)
            case "<": out.append(contentsOf: "&lt;".unicodeScalars)
            case ">": out.append(contentsOf: "&gt;".unicodeScalars)
            case "\"": out.append(contentsOf: "&quot;".unicodeScalars)
            case "'": out.append(contentsOf: "&#39;".unicodeScalars)
            default: out.append(scalar)
            }
        }
        return String(out)
    }
}
