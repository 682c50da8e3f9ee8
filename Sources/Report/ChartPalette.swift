// ChartPalette: series colours that colour-blind readers can tell apart.
import Foundation

enum ChartPalette {
    /// Okabe & Ito's palette (2008), strongest contrasts first; the yellow,
    /// weak on white, comes last.
    static let colours = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#000000", "#F0E442"]

    /// Dash patterns that tell apart series beyond the eighth, whose colours repeat.
    static let dashes = ["", "6 3", "2 3", "8 3 2 3"]

    static func colour(_ index: Int) -> String { colours[index % colours.count] }
    static func dash(_ index: Int) -> String { dashes[(index / colours.count) % dashes.count] }
}
