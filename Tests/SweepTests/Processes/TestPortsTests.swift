// The ports the process tests name before a coordinator binds them: never the
// same one twice in a run (the tests run in parallel), never one bound now.
import Foundation
import Testing
@testable import TestSupport

@Suite struct TestPortsTests {
    @Test func portsAreDistinctAndUnbound() throws {
        let ports = (0..<200).map { _ in TestPorts.unused() }
        #expect(Set(ports).count == ports.count)
        #expect(ports.allSatisfy { TestPorts.range.contains($0) && TestPorts.isFree($0) })
    }

    @Test func aBoundPortIsNotFree() throws {
        let port = TestPorts.unused()
        let fd = try #require(TestPorts.bound(port))
        #expect(!TestPorts.isFree(port))
        close(fd)
        #expect(TestPorts.isFree(port))
    }
}
