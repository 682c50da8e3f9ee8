// The coordinator's address file: written whole and owner-only, read back the
// same, absent until the coordinator binds, waited for, and a wildcard bind
// address published under a host name the workers can reach.
import Foundation
import Testing
@testable import Coordinator
@testable import Protocol
import TestSupport

struct CoordinatorAddressFileTests {
    static func address(_ endpoint: String = "tcp://node17:40213", state: CoordinatorAddress.State = .serving) -> CoordinatorAddress {
        var timing = ProtocolTiming()
        timing.heartbeatInterval = .milliseconds(250)
        return CoordinatorAddress(endpoint: endpoint, host: "node17", pid: 4242, state: state, timing: timing)
    }

    @Test func roundTripsOwnerOnly() throws {
        let dir = try TemporaryDirectory()
        let file = dir.file("coordinator.json")
        #expect(try CoordinatorAddressFile.read(file) == nil)
        try CoordinatorAddressFile.write(Self.address(), to: file)
        #expect(try CoordinatorAddressFile.read(file) == Self.address())
        let permissions = try FileManager.default.attributesOfItem(atPath: file.path)[.posixPermissions] as? Int
        #expect(permissions == 0o600)
        // Rewritten in place (finished), still owner-only, and no partial file left beside it.
        try CoordinatorAddressFile.write(Self.address(state: .finished), to: file)
        #expect(try CoordinatorAddressFile.read(file)?.state == .finished)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.url.path) == ["coordinator.json"])
        // The public key's field is there for the CURVE keys, null until then.
        let object = try JSONSerialization.jsonObject(with: Data(contentsOf: file)) as? [String: Any]
        #expect(object?.keys.contains("public_key") == true)
    }

    @Test func aDamagedFileIsAnErrorNamingIt() throws {
        let dir = try TemporaryDirectory()
        let file = dir.file("coordinator.json")
        try Data("{\"endpoint\": 5".utf8).write(to: file)
        #expect { try CoordinatorAddressFile.read(file) } throws: { "\($0)".contains(file.path) }
    }

    @Test func waitsForTheFileToAppear() throws {
        let dir = try TemporaryDirectory()
        let file = dir.file("coordinator.json")
        let writer = Thread {
            Thread.sleep(forTimeInterval: 0.3)
            try? CoordinatorAddressFile.write(Self.address(), to: file)
        }
        writer.start()
        var waited = false
        let found = try CoordinatorAddressFile.wait(for: file, interval: .milliseconds(50), waiting: { waited = true })
        #expect(found == Self.address() && waited)
        #expect(try CoordinatorAddressFile.wait(for: dir.file("never.json"), interval: .milliseconds(10), stop: { true }) == nil)
    }

    @Test func aWildcardBindIsPublishedUnderTheHostName() {
        #expect(CoordinatorAddress.reachable("tcp://0.0.0.0:40213", host: "node17") == "tcp://node17:40213")
        #expect(CoordinatorAddress.reachable("tcp://[::]:40213", host: "node17") == "tcp://node17:40213")
        #expect(CoordinatorAddress.reachable("tcp://10.1.2.3:40213", host: "node17") == "tcp://10.1.2.3:40213")
        #expect(CoordinatorAddress.reachable("ipc:///tmp/sweep", host: "node17") == "ipc:///tmp/sweep")
    }
}
