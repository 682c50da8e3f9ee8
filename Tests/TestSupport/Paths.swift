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

/// nil when the arrays are equal; otherwise where they first differ and how many elements differ.
/// For large arrays (a model's parameters): `#expect(a == b)` on them makes Swift Testing compute an edit
/// script between the two on failure, which on millions of elements runs for hours instead of failing.
public func firstDifference<T: Equatable>(_ a: [T], _ b: [T]) -> String? {
    guard a != b else { return nil }
    guard a.count == b.count else { return "\(a.count) elements against \(b.count)" }
    let differing = zip(a, b).filter { $0 != $1 }.count
    let first = a.indices.first { a[$0] != b[$0] } ?? 0
    return "\(differing) of \(a.count) elements differ, the first at \(first): \(a[first]) against \(b[first])"
}

/// The largest |a[i] - b[i]| / max(|b[i]|, 1e-3) over two arrays of the same length.
public func maxRelativeDifference(_ a: [Float], _ b: [Float]) -> Float {
    precondition(a.count == b.count, "\(a.count) elements against \(b.count)")
    return zip(a, b).reduce(0) { max($0, abs($1.0 - $1.1) / max(abs($1.1), 1e-3)) }
}
