// CURVE and ZAP on real sockets in one process: an allow-listed worker key is
// served; a keyless peer and an unlisted key never reach the coordinator's
// receive, and each refusal is counted and logged; a revoked key is refused
// at its next connection. Key pairs and the allow-list file round-trip.
import Foundation
import Testing
@testable import Protocol

@Suite(.serialized) struct CurveTransportTests {
    /// A coordinator pair, a worker pair on an allow-list file (0600) in `dir`.
    struct Keys {
        let coordinator: CurveKeyPair, worker: CurveKeyPair, allowList: URL
        init(in dir: URL) throws {
            coordinator = try CurveKeyPair.generate()
            worker = try CurveKeyPair.generate()
            allowList = dir.appendingPathComponent("allowed-workers")
            var list = AllowList()
            list.allow(worker.publicKey, name: "worker-host")
            try list.write(to: allowList)
        }
    }

    static func temporaryDirectory() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("factsweep-curve-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    /// A coordinator endpoint on a loopback port the system picks, guarded by `keys`.
    static func coordinator(_ keys: Keys, _ context: ZMQContext, _ logs: CapturedLogs) throws -> CoordinatorEndpoint {
        try CoordinatorEndpoint(context, bind: "tcp://127.0.0.1:*", timing: testTiming(),
                                security: CoordinatorSecurity(keyPair: keys.coordinator, allowList: keys.allowList), logger: logs.logger())
    }

    /// Whether a hello from `worker` reaches `coordinator` within a short wait.
    static func helloArrives(_ coordinator: CoordinatorEndpoint, from worker: WorkerEndpoint, seconds: Double = 1.5) throws -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            try? worker.send(sample(.hello))
            if try coordinator.receive(timeout: .milliseconds(100)) != nil { return true }
        }
        return false
    }

    @Test func curveIsAvailable() { #expect(Curve.isSupported) }

    @Test func onlyAllowListedKeysGetThroughAndRevokeAppliesAtTheNextConnection() throws {
        let dir = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let keys = try Keys(in: dir)
        let context = try ZMQContext()
        let logs = CapturedLogs()
        let coordinator = try Self.coordinator(keys, context, logs)
        defer { coordinator.close() }
        let authenticator = try #require(coordinator.authenticator)
        func worker(_ id: String, _ security: WorkerSecurity?) throws -> WorkerEndpoint {
            try WorkerEndpoint(context, connect: coordinator.endpoint, workerID: id, timing: testTiming(), security: security,
                               logger: logs.logger())
        }

        // No key: refused at the handshake, before ZAP.
        let plain = try worker("plain", nil)
        #expect(try !Self.helloArrives(coordinator, from: plain))
        plain.close()
        // A key not on the list: refused by ZAP.
        let stranger = try worker("stranger", WorkerSecurity(keyPair: try CurveKeyPair.generate(), coordinatorKey: keys.coordinator.publicKey))
        #expect(try !Self.helloArrives(coordinator, from: stranger))
        stranger.close()
        #expect(authenticator.denials >= 2 && authenticator.admissions == 0)
        let refusals = logs.all.filter { $0.message == "refused a connection" }.map { $0.metadata["reason"] ?? "" }
        #expect(refusals.contains("public key not on the allow-list"), "\(refusals)")
        #expect(refusals.contains { $0.hasPrefix("handshake failed") }, "\(refusals)")

        // The allow-listed key: served, encrypted.
        let listed = try WorkerSecurity(keyPair: keys.worker, coordinatorKey: keys.coordinator.publicKey)
        let first = try worker("listed", listed)
        #expect(try Self.helloArrives(coordinator, from: first))
        #expect(authenticator.admissions == 1)
        first.close()

        // Revoked: the next connection with the same key is refused.
        var list = try AllowList.read(keys.allowList)
        #expect(list.revoke("worker-host") == 1)
        try list.write(to: keys.allowList)
        let denialsBefore = authenticator.denials
        let second = try worker("listed", listed)
        #expect(try !Self.helloArrives(coordinator, from: second))
        second.close()
        #expect(authenticator.denials > denialsBefore && authenticator.admissions == 1)
    }

    /// Once its ZAP handler has stopped, libzmq admits any CURVE key without asking (only the draft
    /// `ZMQ_ZAP_ENFORCE_DOMAIN`, missing from Debian's libzmq, would refuse them), and such a connection's
    /// messages carry no user id: the endpoint drops them, counted, and answers nothing.
    @Test func aConnectionNoHandlerAuthenticatedIsNotRead() throws {
        let dir = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let keys = try Keys(in: dir)
        let context = try ZMQContext()
        let logs = CapturedLogs()
        let coordinator = try Self.coordinator(keys, context, logs)
        defer { coordinator.close() }
        try #require(coordinator.authenticator).stop()
        Thread.sleep(forTimeInterval: 0.5)  // the handler closes its socket within a poll interval (0.1 s)
        let stranger = try WorkerEndpoint(context, connect: coordinator.endpoint, workerID: "stranger", timing: testTiming(),
                                          security: WorkerSecurity(keyPair: try CurveKeyPair.generate(),
                                                                   coordinatorKey: keys.coordinator.publicKey),
                                          logger: logs.logger())
        defer { stranger.close() }
        var received: [(user: String?, message: Result<Message, ProtocolError>)] = []
        let deadline = Date().addingTimeInterval(3)
        while Date() < deadline, received.count < 3 {
            try? stranger.send(sample(.hello))
            if let next = try coordinator.receive(timeout: .milliseconds(100)) { received.append((next.user, next.message)) }
        }
        // The stranger's messages do reach the socket (libzmq let the connection in): none of them is read.
        #expect(!received.isEmpty, "libzmq refused the connection with no handler running; the drop is then never needed")
        #expect(received.allSatisfy { $0.user == nil && $0.message == .failure(.unauthenticated) }, "\(received)")
        #expect(coordinator.rejections["unauthenticated"] == received.count)
        #expect(try stranger.receive(timeout: .milliseconds(300)) == nil, "the stranger was answered")
        #expect(logs.all.contains { $0.message.hasPrefix("a message from a connection no key authenticated was dropped") })
    }

    @Test func aWorkerRefusesACoordinatorWithAnotherKey() throws {
        let dir = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let keys = try Keys(in: dir)
        let context = try ZMQContext()
        let coordinator = try Self.coordinator(keys, context, CapturedLogs())
        defer { coordinator.close() }
        // The worker expects another server key: an impostor coordinator (or this one, to it) cannot complete the handshake.
        let expectingOther = try WorkerSecurity(keyPair: keys.worker, coordinatorKey: try CurveKeyPair.generate().publicKey)
        let worker = try WorkerEndpoint(context, connect: coordinator.endpoint, workerID: "w", timing: testTiming(),
                                        security: expectingOther, logger: CapturedLogs().logger())
        #expect(try !Self.helloArrives(coordinator, from: worker))
        worker.close()
    }

    @Test func keyFilesRoundTripAndRefuseBadInput() throws {
        let dir = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let pair = try CurveKeyPair.generate()
        let files = try KeyFiles.create(pair, name: "node-1", in: dir)
        #expect(try KeyFiles.readKeyPair(files.secret) == pair)
        #expect(try KeyFiles.publicKey(files.public.path) == pair.publicKey)
        #expect(try KeyFiles.publicKey(pair.publicKey) == pair.publicKey)
        #expect(throws: KeyError.self) { try KeyFiles.create(pair, name: "node-1", in: dir) }
        #expect(throws: KeyError.self) { try KeyFiles.create(pair, name: "../escape", in: dir) }
        #expect(throws: KeyError.self) { try Curve.checkedKey("not a key", what: "key") }
        // A pair whose halves do not belong together is refused.
        let other = try CurveKeyPair.generate()
        #expect(throws: KeyError.self) { try CurveKeyPair(publicKey: pair.publicKey, secretKey: other.secretKey) }

        var list = AllowList()
        #expect(list.allow(pair.publicKey, name: "node-1") && !list.allow(pair.publicKey, name: "again"))
        list.allow(other.publicKey, name: "node-2")
        let url = dir.appendingPathComponent("allowed")
        try list.write(to: url)
        #expect(try AllowList.read(url) == list)
        #expect(list.revoke(other.publicKey) == 1 && list.allows(pair.publicKey) && !list.allows(other.publicKey))
        chmod(url.path, 0o644)
        #expect(throws: KeyError.self) { try AllowList.read(url) }
    }
}
