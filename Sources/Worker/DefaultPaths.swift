// DefaultPaths: where the embedded default models and data are found when the
// user names none — `models/` and `data/` of the checkout, found from the
// working directory or from the executable's own location.
import Foundation

/// The checkout's default models and data, for the CLI and the worker.
public enum DefaultPaths {
    public static let modelName = "smollm2-135m-instruct"
    public static let embedderName = "all-minilm-l6-v2"

    /// The checkout root: `$FACTSWEEP_HOME`, else the nearest ancestor of the
    /// working directory or of the executable that holds `models/` or `Package.swift`.
    public static var root: URL {
        if let home = ProcessInfo.processInfo.environment["FACTSWEEP_HOME"] { return URL(fileURLWithPath: home) }
        let starts = [URL(fileURLWithPath: FileManager.default.currentDirectoryPath),
                      URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()]
        for start in starts {
            var dir = start.standardizedFileURL
            while dir.path != "/" {
                if FileManager.default.fileExists(atPath: dir.appendingPathComponent("models").path)
                    || FileManager.default.fileExists(atPath: dir.appendingPathComponent("Package.swift").path) {
                    return dir
                }
                dir.deleteLastPathComponent()
            }
        }
        return URL(fileURLWithPath: FileManager.default.currentDirectoryPath)
    }

    public static var model: URL { root.appendingPathComponent("models").appendingPathComponent(modelName) }
    public static var embedder: URL { root.appendingPathComponent("models").appendingPathComponent(embedderName) }
    public static var data: URL { root.appendingPathComponent("data/biography.jsonl") }
    public static var heldOut: URL { root.appendingPathComponent("data/heldout.txt") }

    /// `path` if given, else the default; a missing default says how to get it.
    public static func resolve(_ path: String?, default url: URL, what: String) throws -> URL {
        if let path { return URL(fileURLWithPath: path) }
        guard FileManager.default.fileExists(atPath: url.path) else {
            throw MissingDefault(what: what, path: url.path)
        }
        return url
    }
}

/// A default model or data file that is not where the checkout keeps it.
public struct MissingDefault: Error, CustomStringConvertible {
    public let what: String
    public let path: String
    public var description: String { "the default \(what) is not at \(path): run scripts/setup.sh, or name one explicitly" }
}
