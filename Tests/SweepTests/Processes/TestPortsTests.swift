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
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr = in_addr(s_addr: INADDR_ANY)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
        #expect(bound)
        #expect(!TestPorts.isFree(port))
    }
}
