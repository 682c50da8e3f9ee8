// The SVG chart writer's axes: round ticks, whole epochs, decades on a log
// axis, and text that stays inside the picture.
import Foundation
import Testing
@testable import Report
@testable import Store

@Suite struct ChartTests {
    @Test func linearAxesUseRoundTicks() {
        let accuracy = ChartScale.linear(0, 1)
        #expect(accuracy.ticks == [0, 0.2, 0.4, 0.6, 0.8, 1.0])
        #expect(accuracy.ticks.map(accuracy.label) == ["0.0", "0.2", "0.4", "0.6", "0.8", "1.0"])
        let epochs = ChartScale.linear(0, 30, count: 8, integers: true)
        #expect(epochs.ticks == [0, 5, 10, 15, 20, 25, 30])
        #expect(ChartScale.linear(0, 3, count: 8, integers: true).ticks == [0, 1, 2, 3])
        let seconds = ChartScale.linear(0, 91.8)
        #expect(seconds.upper == 100 && seconds.ticks.map(seconds.label) == ["0", "20", "40", "60", "80", "100"])
        #expect(ChartScale.linear(0, 0).ticks.first == 0)
    }

    @Test func logarithmicAxesTickEveryDecade() {
        let loss = ChartScale.log10(2.3e-5, 2.6)
        #expect(loss.ticks.count == 7 && loss.lower == 1e-5 && abs(loss.upper - 10) < 1e-9)
        #expect(loss.ticks.map(loss.label) == ["10⁻⁵", "10⁻⁴", "10⁻³", "10⁻²", "10⁻¹", "10⁰", "10¹"])
        let short = ChartScale.log10(0.02, 3)
        #expect(short.ticks.map(short.label) == ["0.01", "0.1", "1", "10"])
        #expect(abs(short.fraction(0.1) - 1.0 / 3) < 1e-9)
        #expect(!short.canShow(0))
    }

    @Test func legendTextIsShortenedAndEscaped() {
        let series = ChartSeries(name: "a <b> & \"c\"", legend: String(repeating: "long name ", count: 6), legendDetail: nil,
                                 points: [ChartPoint(x: 1, y: 0.5, low: 0.4, high: 0.6)], partial: false)
        let chart = LineChart(title: "T", xLabel: "epoch", yLabel: "loss", logarithmicY: false, yIncludes: [0],
                              series: [series], bandNote: "shaded: min–max across seeds; line: mean")
        let svg = SVGChartWriter.svg(chart)
        #expect(svg.contains("data-series=\"a &lt;b&gt; &amp; &quot;c&quot;\""))
        #expect(svg.contains(">long name long name long…</text>"))
        // A single point draws a marker, since a one-point path shows nothing.
        #expect(svg.contains("<circle"))
        #expect(SVGInspector.parse(svg) != nil)
    }

    /// A quote followed by a combining mark is one `Character` but two scalars: escaping by `Character`
    /// let the quote out bare, and a line named from a spec's path setting could add an attribute (an
    /// event handler) to the dashboard's SVG.
    @Test func aQuoteWithACombiningMarkIsEscapedToo() throws {
        let name = "x\"\u{301} onmouseover=alert(1) q=\"\u{301}"
        #expect(!SVGChartWriter.escape(name).contains("\""))
        #expect(SVGChartWriter.escape(name).hasPrefix("x&quot;\u{301} onmouseover"))
        let series = ChartSeries(name: name, legend: name, legendDetail: nil,
                                 points: [ChartPoint(x: 1, y: 0.5, low: 0.4, high: 0.6)], partial: false)
        let chart = LineChart(title: "T", xLabel: "epoch", yLabel: "loss", logarithmicY: false, yIncludes: [0],
                              series: [series], bandNote: "")
        let svg = try #require(SVGInspector.parse(SVGChartWriter.svg(chart)))
        let attributes = svg.elements.flatMap { $0.attributes.keys }
        #expect(!attributes.contains("onmouseover"), "\(attributes)")
        #expect(svg.elements.contains { $0.attributes["data-series"] == name })
    }
}
