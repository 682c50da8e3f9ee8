// SpecValues: reading a setting's value from the spec's JSON — the right JSON
// type for the setting's kind, paths made absolute against the spec's folder —
// then checked by the Trial module's one table of settings.
import Foundation
import Trial

extension TrialSetting {
    /// Reads one value, checked; paths are resolved against `base`. Throws the message for the user.
    func parse(_ value: JSONValue, base: URL) throws(SettingRefusal) -> SettingValue {
        let parsed: SettingValue
        switch kind {
        case .integer: parsed = .int(try value.integer())
        case .number: parsed = .float(try value.float(expectation ?? "a number"))
        case .boolean: parsed = .bool(try value.boolean())
        case .targets:
            let text = try value.text("module names, comma-separated, or \"all-linear\"")
            do { parsed = .targets(try MethodSettings.parseTargets(text)) } catch { throw SettingRefusal("\(error)") }
        case .schedule: parsed = .schedule(try value.named(LearningRateSchedule.Decay.self, "schedule"))
        case .precision: parsed = .precision(try value.named(Precision.self, "precision"))
        case .epochs:
            guard case .array(let items) = value else { throw SettingRefusal("expected a list of epochs such as [0, 1, 2], got \(value.described)") }
            var epochs: [Int] = []
            for item in items {
                do throws(SettingRefusal) { epochs.append(try item.integer()) } catch {
                    throw SettingRefusal("\(error.message) in the list of epochs")
                }
            }
            parsed = .epochs(epochs)
        case .path(let allowsNone): parsed = .text(try value.existingPath(base: base, allowingNone: allowsNone))
        }
        try check(parsed)
        return parsed
    }
}

extension JSONValue {
    /// One of a string enumeration's raw values; a near miss is suggested.
    func named<Name: RawRepresentable & CaseIterable>(_ type: Name.Type, _ what: String) throws(SettingRefusal) -> Name
    where Name.RawValue == String {
        let names = Name.allCases.map(\.rawValue)
        let text = try text(names.joined(separator: ", "))
        guard let name = Name(rawValue: text) else {
            throw SettingRefusal("unknown \(what) \"\(text)\" (expected \(names.joined(separator: ", ")))"
                + NameSuggestion.hint(for: text, in: names))
        }
        return name
    }

    func integer() throws(SettingRefusal) -> Int {
        guard case .integer(let v) = self else { throw SettingRefusal("expected an integer, got \(described)") }
        return v
    }

    /// A number as Float; one that Float cannot hold (1e39) is refused as written.
    func float(_ expected: String) throws(SettingRefusal) -> Float {
        let v: Float
        switch self {
        case .integer(let i): v = Float(i)
        case .number(let d): v = Float(d)
        default: throw SettingRefusal("expected \(expected), got \(described)")
        }
        guard v.isFinite else { throw SettingRefusal("must be \(expected) (got \(shortText))") }
        return v
    }

    func boolean() throws(SettingRefusal) -> Bool {
        guard case .bool(let b) = self else { throw SettingRefusal("expected true or false, got \(described)") }
        return b
    }

    func text(_ expected: String) throws(SettingRefusal) -> String {
        guard case .string(let s) = self else { throw SettingRefusal("expected a string (\(expected)), got \(described)") }
        return s
    }

    /// A path that exists, made absolute against `base`; "none" passes through when allowed.
    func existingPath(base: URL, allowingNone: Bool) throws(SettingRefusal) -> String {
        let written = try text(allowingNone ? "a path or \"none\"" : "a path")
        if allowingNone, written == "none" { return written }
        let path = try SpecPaths.resolve(written, base: base)
        guard FileManager.default.fileExists(atPath: path) else { throw SettingRefusal("no such file or directory: \(path)") }
        return path
    }
}

/// How spec paths are made absolute.
enum SpecPaths {
    /// `written` if absolute, else relative to `base` (the spec file's
    /// directory); `.` and `..` removed, symbolic links and `~` left alone.
    static func resolve(_ written: String, base: URL) throws(SettingRefusal) -> String {
        guard !written.isEmpty else { throw SettingRefusal("empty path") }
        let directory = URL(fileURLWithPath: base.path, isDirectory: true)  // a base without trailing "/" would drop its last component
        return URL(fileURLWithPath: written, relativeTo: directory).standardizedFileURL.path
    }
}
