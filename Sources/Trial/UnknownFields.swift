// UnknownFields: the members of a received JSON body that this build did not
// read. JSONDecoder skips a member it has no property for, so a worker built
// before a setting existed would otherwise run a trial without it and report
// results under a configuration it never computed (protocol version 4), and a
// coordinator built before it would hand out a newer run database's trials
// without it (RunStore.trialsWithUnreadSettings).
import Foundation

public enum UnknownFields {
    /// Paths (`config.training.precision`, `config.training.method.targets[1].x`)
    /// of the members of `received` that `understood` — the same body decoded
    /// and encoded again by this build — lacks, sorted. A member whose value is
    /// null asks for nothing and is not counted; neither is a member inside a
    /// value whose type differs between the two (the decoder would have refused
    /// that body already).
    public static func paths(received: JSONValue, understood: JSONValue, at path: String = "") -> [String] {
        switch (received, understood) {
        case let (.object(got), .object(read)):
            return got.keys.sorted().flatMap { name -> [String] in
                let member = path.isEmpty ? name : "\(path).\(name)"
                guard let value = got[name], value != .null else { return [] }
                guard let kept = read[name] else { return [member] }
                return paths(received: value, understood: kept, at: member)
            }
        case let (.array(got), .array(read)):
            return zip(got, read).enumerated().flatMap { index, pair in
                paths(received: pair.0, understood: pair.1, at: "\(path)[\(index)]")
            }
        default:
            return []
        }
    }

    /// `paths` for a body and the value this build decoded from it.
    public static func paths(in body: Data, decoded: some Encodable, encoder: JSONEncoder) throws -> [String] {
        let decoder = JSONDecoder()
        return paths(received: try decoder.decode(JSONValue.self, from: body),
                     understood: try decoder.decode(JSONValue.self, from: encoder.encode(decoded)))
    }
}
