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
    /// How sampled axes are drawn; nil when no setting is sampled.
    var sampling: SamplingSettings?
    /// The top-level `stopping` rule, for conditions without their own.
    var stopping: StoppingRule?
}

/// The settings given at one place of the spec; each holds one value, or several to expand.
struct SettingsLayer: Sendable {
    /// Where in the document: `defaults`, `grid`, `conditions[2]`.
    var path: String
    var values: [TrialSetting: [SettingValue]] = [:]
    /// Settings whose values are drawn (`{"log_uniform": [1e-5, 1e-3]}`), not listed.
    var sampled: [TrialSetting: SampledAxis] = [:]

    /// Whether the layer gives `setting` at all, listed or sampled.
    func sets(_ setting: TrialSetting) -> Bool { values[setting] != nil || sampled[setting] != nil }
}

/// One condition of the study: a named method with its own settings.
struct SpecCondition: Sendable {
    var name: String
    var method: MethodKind
    var settings: SettingsLayer
    /// The condition's own `stopping` rule (it replaces the top-level one).
    var stopping: StoppingRule?
}

/// Reads a spec document; problems accumulate in `problems`.
struct SpecReader {
    /// The directory relative paths start from: the spec file's.
    let base: URL
    private(set) var problems: [SpecProblem] = []

    static let topLevel = ["name", "description", "model", "data", "defaults", "conditions", "grid", "sampling", "stopping"]
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
        for setting in TrialSetting.allCases where defaults.sets(setting) && grid.sets(setting) {
            report("grid.\(setting.rawValue)", setting.rawValue, nil, "also set in defaults: give it in one place")
        }
        let sampling = readSampling(members["sampling"])
        let stopping = readStopping(members["stopping"], path: "stopping", condition: nil)
        let samples = ([defaults, grid] + conditions.map(\.settings)).contains { !$0.sampled.isEmpty }
        if samples, sampling == nil, members["sampling"] == nil {
            report("sampling", "sampling", nil, "a sampled setting needs \"sampling\": {\"samples\": N, \"seed\": S} (how many points to draw, from which seed)")
        } else if !samples, sampling != nil {
            report("sampling", "sampling", nil, "no setting is sampled: give one as {\"uniform\" | \"log_uniform\" | \"int\": [low, high]} or {\"choice\": [...]}, or remove sampling")
        }
        guard problems.isEmpty, let name, let model, let data else { return nil }
        return SweepSpec(name: name, model: model, data: data, defaults: defaults, grid: grid, conditions: conditions,
                         sampling: sampling, stopping: stopping)
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
        let stopping = readStopping(members.removeValue(forKey: "stopping"), path: "\(at).stopping", condition: name)
        let settings = layer(.object(members), path: at, condition: name, alsoKnown: ["name", "method", "stopping"])
        if let method {
            for setting in TrialSetting.allCases where settings.sets(setting) && !setting.methods.contains(method) {
                let users = MethodKind.allCases.filter(setting.methods.contains).map(\.rawValue).joined(separator: ", ")
                report("\(at).\(setting.rawValue)", setting.rawValue, name,
                       "\(setting.rawValue) does not apply to method \(method.rawValue) (only to \(users)); remove it")
            }
        }
        guard let name, let method else { return nil }
        return SpecCondition(name: name, method: method, settings: settings, stopping: stopping)
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
                } else if key == "stopping" {
                    report(at, key, condition, "stopping is a policy, not a setting: give it at the top level or in a condition, not in \(path)")
                } else {
                    let known = alsoKnown + TrialSetting.allCases.map(\.rawValue)
                    report(at, key, condition, "unknown setting \"\(key)\"" + NameSuggestion.hint(for: key, in: known))
                }
                continue
            }
            switch raw {
            case .array(let items) where setting.kind.isEpochList && !items.contains(where: \.isArray):
                // A list of epochs is one value; a list of such lists is an axis.
                if listsOnly {
                    report(at, key, condition, "a grid axis of \(key) is a list of lists of epochs: write [\(raw.shortText)] for one")
                } else if let value = parse(setting, raw, path: at, condition: condition) {
                    layer.values[setting] = [value]
                }
            case .array(let items):
                if let values = distinctValues(setting, items, path: at, condition: condition, in: "list") { layer.values[setting] = values }
            case .object(let distribution):
                if let axis = sampledAxis(setting, distribution, path: at, condition: condition) { layer.sampled[setting] = axis }
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

    /// A list's values (`in`: "list" or "choice", for messages), each checked, none repeated, at least one; nil
    /// when any is refused.
    private mutating func distinctValues(_ setting: TrialSetting, _ items: [JSONValue], path: String, condition: String?,
                                         in container: String) -> [SettingValue]? {
        if items.isEmpty { report(path, setting.rawValue, condition, "empty \(container): give at least one value") }
        var values: [SettingValue] = []
        var seen = Set<SettingValue>()  // a grid of 100k seeds is one list: no quadratic search
        for (index, item) in items.enumerated() {
            guard let value = parse(setting, item, path: "\(path)[\(index)]", condition: condition) else { continue }
            if seen.insert(value).inserted {
                values.append(value)
            } else {
                report("\(path)[\(index)]", setting.rawValue, condition, "\(item.shortText) is already in the \(container)")
            }
        }
        return values.count == items.count && !values.isEmpty ? values : nil
    }

    // MARK: Sampling

    /// Reads `{"uniform": [low, high]}` and its kin for `setting`.
    private mutating func sampledAxis(_ setting: TrialSetting, _ members: [String: JSONValue], path: String,
                                      condition: String?) -> SampledAxis? {
        let field = setting.rawValue
        let expected = "one of {\"uniform\": [low, high]}, {\"log_uniform\": [low, high]}, {\"int\": [low, high]}, {\"choice\": [values]}"
        guard members.count == 1, let (kind, raw) = members.first else {
            report(path, field, condition, "a sampled setting is \(expected) (got \(members.count) members)")
            return nil
        }
        let at = "\(path).\(kind)"
        guard SampledAxis.names.contains(kind) else {
            report(at, field, condition, "unknown distribution \"\(kind)\" (expected \(SampledAxis.names.joined(separator: ", ")))"
                   + NameSuggestion.hint(for: kind, in: SampledAxis.names))
            return nil
        }
        guard case .array(let items) = raw else {
            report(at, field, condition, "expected a list, got \(raw.kindName)")
            return nil
        }
        if kind == "choice" { return distinctValues(setting, items, path: at, condition: condition, in: "choice").map { .choice($0) } }
        guard items.count == 2 else {
            report(at, field, condition, "expected [low, high], got a list of \(items.count)")
            return nil
        }
        switch (kind, setting.kind) {
        case ("int", .integer):
            guard let low = parse(setting, items[0], path: "\(at)[0]", condition: condition),
                  let high = parse(setting, items[1], path: "\(at)[1]", condition: condition),
                  case .int(let l) = low, case .int(let h) = high else { return nil }
            guard l <= h else {
                report(at, field, condition, "low must not exceed high (got [\(l), \(h)])")
                return nil
            }
            guard h - l < Int.max else {
                report(at, field, condition, "the range [\(l), \(h)] is too wide")
                return nil
            }
            return .int(low: l, high: h)
        case ("int", _):
            report(at, field, condition, "int draws integers; \(field) is \(setting.kindDescription): use uniform, log_uniform or choice")
            return nil
        case (_, .number):
            guard let low = parse(setting, items[0], path: "\(at)[0]", condition: condition),
                  let high = parse(setting, items[1], path: "\(at)[1]", condition: condition),
                  case .float(let l) = low, case .float(let h) = high else { return nil }
            if kind == "log_uniform", l <= 0 {
                report("\(at)[0]", field, condition, "log_uniform needs bounds above 0 (got \(l))")
                return nil
            }
            guard l < h else {
                report(at, field, condition, "low must be below high (got [\(l), \(h)])")
                return nil
            }
            return kind == "uniform" ? .uniform(low: l, high: h) : .logUniform(low: l, high: h)
        default:
            report(at, field, condition, "\(kind) draws numbers; \(field) is \(setting.kindDescription): use "
                   + (setting.kind.isInteger ? "int or choice" : "choice"))
            return nil
        }
    }

    /// The top-level `sampling` member: `{"samples": N, "seed": S}`.
    private mutating func readSampling(_ value: JSONValue?) -> SamplingSettings? {
        guard let value else { return nil }
        guard case .object(let members) = value else {
            report("sampling", "sampling", nil, "expected {\"samples\": N, \"seed\": S}, got \(value.kindName)")
            return nil
        }
        for key in members.keys.sorted() where !["samples", "seed"].contains(key) {
            report("sampling.\(key)", key, nil, "unknown member \"\(key)\" (expected samples and seed)")
        }
        var samples: Int?, seed: Int?
        for (field, minimum) in [("samples", 1), ("seed", 0)] {
            guard let raw = members[field] else {
                report("sampling.\(field)", field, nil, "missing: " + (field == "samples" ? "how many points to draw" : "the seed to draw them from"))
                continue
            }
            do throws(SettingRefusal) {
                let v = try raw.integer()
                guard v >= minimum else {
                    report("sampling.\(field)", field, nil, "must be at least \(minimum) (got \(v))")
                    continue
                }
                if field == "samples" { samples = v } else { seed = v }
            } catch {
                report("sampling.\(field)", field, nil, error.message)
            }
        }
        if let s = samples, s > SweepPlan.maximumTrials {
            report("sampling.samples", "samples", nil, "more than \(SweepPlan.maximumTrials) samples is taken for a mistake (got \(s))")
            return nil
        }
        guard let samples, let seed else { return nil }
        return SamplingSettings(samples: samples, seed: UInt64(seed))
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
