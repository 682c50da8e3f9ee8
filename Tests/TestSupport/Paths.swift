// Paths: where tests find the repository, its models and golden files.
import Foundation

/// Locations shared by the test targets.
public enum TestPaths {
    /// The repository root, found from this source file's location.
    public static let repositoryRoot: URL = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url
    }()

    /// `models/NAME` fetched by `scripts/setup.sh`. Fails loudly when absent:
    /// a missing asset is a failed test, never a skipped one.
    public static func model(_ relative: String) throws -> URL {
        let url = repositoryRoot.appendingPathComponent("models").appendingPathComponent(relative)
        guard FileManager.default.fileExists(atPath: url.path) else {
            throw MissingAsset(path: url.path)
        }
        return url
    }
}

/// A test asset that `scripts/setup.sh` should have fetched is not there.
public struct MissingAsset: Error, CustomStringConvertible {
    public let path: String
    public var description: String { "missing test asset \(path): run scripts/setup.sh" }
}

extension TestPaths {
    /// A golden directory committed under Tests/CoreTests/Golden.
    public static func golden(_ name: String) -> URL {
        repositoryRoot.appendingPathComponent("Tests/CoreTests/Golden").appendingPathComponent(name)
    }
}
