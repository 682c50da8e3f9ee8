// LoaderTestHelpers: golden-file lookup, temporary directories and error
// checks shared by the loader tests.
import Foundation
import Testing
import TestSupport
@testable import Core
import Trial

/// Golden files committed under Tests/CoreTests/Golden.
enum Golden {
    static func url(_ relative: String) throws -> URL {
        let url = TestPaths.repositoryRoot.appendingPathComponent("Tests/CoreTests/Golden").appendingPathComponent(relative)
        guard FileManager.default.fileExists(atPath: url.path) else { throw Missing(path: url.path) }
        return url
    }

    /// A golden file is not there; regenerate it with scripts/reference.
    struct Missing: Error, CustomStringConvertible {
        let path: String
        var description: String { "missing golden file \(path): see scripts/reference/" }
    }
}

/// Runs `body`, requiring a `LoadError` whose description contains `fileName`
/// and each of `fragments`; returns the error for further checks.
@discardableResult
func expectLoadError(
    mentioning fileName: String, _ fragments: String..., sourceLocation: SourceLocation = #_sourceLocation,
    _ body: () throws -> Void
) -> LoadError? {
    do {
        try body()
        Issue.record("expected a LoadError mentioning \(fileName)", sourceLocation: sourceLocation)
    } catch let error as LoadError {
        #expect(error.description.contains(fileName), "\(error) should name \(fileName)", sourceLocation: sourceLocation)
        for fragment in fragments {
            #expect(error.description.contains(fragment), "\(error) should mention \(fragment)", sourceLocation: sourceLocation)
        }
        return error
    } catch {
        Issue.record("expected a LoadError, got \(error)", sourceLocation: sourceLocation)
    }
    return nil
}

/// Largest absolute difference between two equally long arrays (infinity if
/// the lengths differ).
func maxAbsDifference(_ a: [Float], _ b: [Float]) -> Float {
    guard a.count == b.count else { return .infinity }
    return zip(a, b).reduce(0) { max($0, abs($1.0 - $1.1)) }
}

extension GGUFFile {
    /// Reads a tensor by GGUF name in GGUF order.
    func floats(gguf name: String) throws -> [Float] {
        guard let info = tensor(name) else { throw LoadError.missingTensor(file: path, tensor: name) }
        var out = [Float](repeating: .nan, count: info.elementCount)
        try out.withUnsafeMutableBufferPointer { try read(info, into: $0) }
        return out
    }
}
