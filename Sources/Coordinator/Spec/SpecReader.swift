// SpecReader: walks a sweep spec's JSON tree into a `SweepSpec`, checking
// every member and value and collecting every problem rather than stopping at
// the first, so that one `factsweep plan` shows all there is to fix.
import Foundation
import Trial

/// A sweep specification whose every value has been checked, before expansion.
struct SweepSpec: Sendable {
    var name: String
    /// Absolute paths (see `SpecPaths`).
    var model: String
    var data: String
    var defaults: SettingsLayer
    var grid: SettingsLayer
    var conditions: [SpecCondition]
}

/// The settings given at one place of the spec; each holds one value, or several to expand.
struct SettingsLayer: Sendable {
    /// Where in the document: `defaults`, `grid`, `conditions[2]`.
    var path: String
    var values: [TrialSetting: [SettingValue]] = [:]
}

/// One condition of the study: a named method with its own settings.
struct SpecCondition: Sendable {
    var name: String
    var method: MethodKind
    var settings: SettingsLayer
}

/// Reads a spec document; problems accumulate in `problems`.
struct SpecReader {
    /// The directory relative paths start from: the spec file's.
    let base: URL
    private(set) var problems: [SpecProblem] = []

    static let topLevel = ["name", "description", "model", "data", "defaults", "conditions", "grid"]
    /// Condition names go into tables and file names.
    static let nameCharacters = CharacterSet.alphanumerics.union(CharacterSet(charactersIn: "._+-"))

    init(base: URL) { self.base = base }

    /// The checked spec, or nil when anything is wrong (see `problems`).
    mutating func read(_ root: JSONValue) -> SweepSpec? {
        guard case .object(let members) = root else {
            report("", nil, nil, "expected a JSON object with name, model, data and conditions, got \(root.kindName)")
            return nil
        }
        for key in members.keys.sorted() where !Self.topLevel.contains(key) {
            report(key, key, nil, "unknown member \"\(key)\"" + NameSuggestion.hint(for: key, in: Self.topLevel))
        }
        let name = text(members["name"], path: "name", condition: nil, what: "the sweep's name")
        if let name, name.trimmingCharacters(in: .whitespaces).isEmpty { report("name", "name", nil, "must not be empty") }
        if let description = members["description"] { _ = text(description, path: "description", condition: nil, what: "free text") }
        let model = path(members["model"], field: "model", what: "a GGUF file or Hugging Face model directory") { path in
            do { _ = try ModelLocation.resolve(URL(fileURLWithPath: path)) } catch { return "\(error)" }
            return nil
        }
        let data = path(members["data"], field: "data", what: "facts as JSON Lines") { path in
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else { return "no such file: \(path)" }
            return isDirectory.boolValue ? "\(path) is a directory, not a JSON Lines file" : nil
        }
        let defaults = layer(members["defaults"], path: "defaults", condition: nil)
        let conditions = readConditions(members["conditions"])
        let grid = layer(members["grid"], path: "grid", condition: nil, listsOnly: true)
        for setting in TrialSetting.allCases where defaults.values[setting] != nil && grid.values[setting] != nil {
            report("grid.\(setting.rawValue)", setting.rawValue, nil, "also set in defaults: give it in one place")
        }
        guard problems.isEmpty, let name, let model, let data else { return nil }
        return SweepSpec(name: name, model: model, data: data, defaults: defaults, grid: grid, conditions: conditions)
    }

    // MARK: Conditions

    private mutating func readConditions(_ value: JSONValue?) -> [SpecCondition] {
        guard case .array(let items)? = value, !items.isEmpty else {
            let got = value.map { $0 == .array([]) ? "an empty list" : "\($0.kindName)" } ?? "nothing"
            report("conditions", "conditions", nil, "expected a list of conditions, each {\"name\": …, \"method\": …}, got \(got)")
            return []
        }
        var indexByName: [String: Int] = [:]
        return items.enumerated().compactMap { index, item in readCondition(item, index: index, indexByName: &indexByName) }
    }

    private mutating func readCondition(_ item: JSONValue, index: Int, indexByName: inout [String: Int]) -> SpecCondition? {
        let at = "conditions[\(index)]"
        guard case .object(var members) = item else {
            report(at, nil, nil, "expected a condition object {\"name\": …, \"method\": …}, got \(item.kindName)")
            return nil
        }
        let name = text(members.removeValue(forKey: "name"), path: "\(at).name", condition: nil, what: "the condition's name")
        if let name {
            if name.isEmpty || !name.unicodeScalars.allSatisfy(Self.nameCharacters.contains) {
                report("\(at).name", "name", name, "a condition name is letters, digits, '.', '_', '+' and '-' (got \"\(name)\")")
            } else if let other = indexByName[name] {
                report("\(at).name", "name", name, "conditions[\(other)] has the same name")
            } else {
                indexByName[name] = index
            }
        }
        let method = readMethod(members.removeValue(forKey: "method"), at: at, condition: name)
        let settings = layer(.object(members), path: at, condition: name, alsoKnown: ["name", "method"])
        if let method {
            for setting in TrialSetting.allCases where settings.values[setting] != nil && !setting.methods.contains(method) {
                let users = MethodKind.allCases.filter(setting.methods.contains).map(\.rawValue).joined(separator: ", ")
                report("\(at).\(setting.rawValue)", setting.rawValue, name,
                       "\(setting.rawValue) does not apply to method \(method.rawValue) (only to \(users)); remove it")
            }
        }
        guard let name, let method else { return nil }
        return SpecCondition(name: name, method: method, settings: settings)
    }

    private mutating func readMethod(_ value: JSONValue?, at: String, condition: String?) -> MethodKind? {
        let names = MethodKind.allCases.map(\.rawValue)
        let expected = names.joined(separator: ", ")
        if case .array = value {
            report("\(at).method", "method", condition, "one method per condition (expected one of \(expected)); give each method its own condition")
            return nil
        }
        guard let written = text(value, path: "\(at).method", condition: condition, what: expected) else { return nil }
        guard let method = MethodKind(rawValue: written) else {
            report("\(at).method", "method", condition, "unknown method \"\(written)\" (expected \(expected))" + NameSuggestion.hint(for: written, in: names))
            return nil
        }
        return method
    }

    // MARK: Settings

    /// Reads an object of settings. `listsOnly`: every value must be a list (the grid).
    private mutating func layer(_ value: JSONValue?, path: String, condition: String?, listsOnly: Bool = false,
                                alsoKnown: [String] = []) -> SettingsLayer {
        var layer = SettingsLayer(path: path)
        guard let value else { return layer }
        guard case .object(let members) = value else {
            report(path, path, condition, "expected an object of settings, got \(value.kindName)")
            return layer
        }
        let order = { (key: String) in TrialSetting(rawValue: key).flatMap(TrialSetting.allCases.firstIndex) ?? Int.max }
        for (key, raw) in members.sorted(by: { (order($0.key), $0.key) < (order($1.key), $1.key) }) {
            let at = "\(path).\(key)"
            guard let setting = TrialSetting(rawValue: key) else {
                if key == "name" || key == "method" {
                    report(at, key, condition, "\(key) belongs in each condition, not in \(path)")
                } else {
                    let known = alsoKnown + TrialSetting.allCases.map(\.rawValue)
                    report(at, key, condition, "unknown setting \"\(key)\"" + NameSuggestion.hint(for: key, in: known))
                }
                continue
            }
            switch raw {
            case .array(let items):
                if items.isEmpty { report(at, key, condition, "empty list: give at least one value") }
                var values: [SettingValue] = []
                for (index, item) in items.enumerated() {
                    guard let value = parse(setting, item, path: "\(at)[\(index)]", condition: condition) else { continue }
                    if values.contains(value) {
                        report("\(at)[\(index)]", key, condition, "\(item.shortText) is already in the list")
                    } else {
                        values.append(value)
                    }
                }
                if values.count == items.count, !values.isEmpty { layer.values[setting] = values }
            default:
                if listsOnly {
                    report(at, key, condition, "a grid axis is a list of values: write [\(raw.shortText)] for one")
                } else if let value = parse(setting, raw, path: at, condition: condition) {
                    layer.values[setting] = [value]
                }
            }
        }
        return layer
    }

    private mutating func parse(_ setting: TrialSetting, _ value: JSONValue, path: String, condition: String?) -> SettingValue? {
        do throws(SettingRefusal) { return try setting.parse(value, base: base) } catch {
            report(path, setting.rawValue, condition, error.message)
            return nil
        }
    }

    // MARK: Members

    /// A required string member.
    private mutating func text(_ value: JSONValue?, path: String, condition: String?, what: String) -> String? {
        let field = String(path.split(separator: ".").last ?? "")
        guard let value else {
            report(path, field, condition, "missing: \(what)")
            return nil
        }
        do throws(SettingRefusal) { return try value.text(what) } catch {
            report(path, field, condition, error.message)
            return nil
        }
    }

    /// A required path member, resolved; `check` returns what is wrong with the file, if anything.
    private mutating func path(_ value: JSONValue?, field: String, what: String, check: (String) -> String?) -> String? {
        guard let written = text(value, path: field, condition: nil, what: what) else { return nil }
        do throws(SettingRefusal) {
            let resolved = try SpecPaths.resolve(written, base: base)
            if let problem = check(resolved) {
                report(field, field, nil, problem)
                return nil
            }
            return resolved
        } catch {
            report(field, field, nil, error.message)
            return nil
        }
    }

    /// Records a problem once.
    mutating func report(_ path: String, _ field: String?, _ condition: String?, _ message: String) {
        let problem = SpecProblem(path: path, field: field, condition: condition, message: message)
        if !problems.contains(problem) { problems.append(problem) }
    }
}
