// AllowList: the worker public keys the coordinator admits, one per line as
// `Z85 NAME` in a 0600 file. The ZAP handler reads it at every connection, so
// an edit (`factsweep keys allow` / `revoke`) applies to the next one.
import Foundation

public struct AllowList: Sendable, Equatable {
    public struct Entry: Sendable, Equatable {
        public var key: String
        public var name: String
    }
    public private(set) var entries: [Entry] = []

    public init() {}

    /// Reads `url`; a missing file is an empty list only when `missingIsEmpty` (for `allow` to create it).
    public static func read(_ url: URL, missingIsEmpty: Bool = false) throws(KeyError) -> AllowList {
        if missingIsEmpty && !FileManager.default.fileExists(atPath: url.path) { return AllowList() }
        try KeyFiles.requirePrivate(url)
        let text: String
        do { text = try String(contentsOf: url, encoding: .utf8) } catch { throw KeyError("\(url.path): cannot read: \(error.localizedDescription)") }
        var list = AllowList()
        for (number, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if trimmed.isEmpty || trimmed.hasPrefix("#") { continue }
            let parts = trimmed.split(separator: " ", maxSplits: 1)
            do {
                let key = try Curve.checkedKey(String(parts[0]), what: "key")
                list.entries.append(Entry(key: key, name: parts.count > 1 ? parts[1].trimmingCharacters(in: .whitespaces) : ""))
            } catch {
                throw KeyError("\(url.path):\(number + 1): \(error)")
            }
        }
        return list
    }

    public func allows(_ key: String) -> Bool { entries.contains { $0.key == key } }

    /// Adds `key` under `name`; false if it was already there.
    @discardableResult
    public mutating func allow(_ key: String, name: String) -> Bool {
        guard !allows(key) else { return false }
        entries.append(Entry(key: key, name: name))
        return true
    }

    /// Removes the entries whose key or name is `keyOrName`; how many went.
    @discardableResult
    public mutating func revoke(_ keyOrName: String) -> Int {
        let before = entries.count
        entries.removeAll { $0.key == keyOrName || (!$0.name.isEmpty && $0.name == keyOrName) }
        return before - entries.count
    }

    /// Writes the list atomically with mode 0600.
    public func write(to url: URL) throws(KeyError) {
        let lines = entries.map { $0.name.isEmpty ? $0.key : "\($0.key) \($0.name)" }
        try KeyFiles.replace(url, "# factsweep allow-list: worker public keys the coordinator admits (Z85 NAME)\n" + lines.map { $0 + "\n" }.joined())
    }
}
