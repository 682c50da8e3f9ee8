// SVGInspector: parses an SVG document with Foundation's XMLParser and keeps
// its elements, attributes and text, for tests that check what a chart shows.
import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif

/// The elements of a parsed XML document, in document order.
final class SVGInspector: NSObject, XMLParserDelegate {
    struct Element {
        var name: String
        var attributes: [String: String]
        var text: String
    }

    private(set) var elements: [Element] = []
    private var open: [Int] = []
    private(set) var error: Error?

    /// Parses `text`; nil when it is not well-formed XML (`error` says why).
    static func parse(_ text: String) -> SVGInspector? {
        let inspector = SVGInspector()
        let parser = XMLParser(data: Data(text.utf8))
        parser.delegate = inspector
        return parser.parse() ? inspector : nil
    }

    func parser(_ parser: XMLParser, didStartElement name: String, namespaceURI: String?, qualifiedName: String?,
                attributes: [String: String] = [:]) {
        elements.append(Element(name: name, attributes: attributes, text: ""))
        open.append(elements.count - 1)
    }

    func parser(_ parser: XMLParser, didEndElement name: String, namespaceURI: String?, qualifiedName: String?) {
        _ = open.popLast()
    }

    func parser(_ parser: XMLParser, foundCharacters string: String) {
        if let index = open.last { elements[index].text += string }
    }

    /// Elements named `name` whose attribute `attribute` is `value` (any value when nil).
    func all(_ name: String, _ attribute: String? = nil, _ value: String? = nil) -> [Element] {
        elements.filter { element in
            element.name == name && attribute.map { key in
                value.map { element.attributes[key] == $0 } ?? (element.attributes[key] != nil)
            } ?? true
        }
    }
}
