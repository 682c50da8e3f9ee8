// Messages through real sockets: a bound ROUTER (the coordinator's end) and
// connected DEALERs (workers, and raw peers that misbehave) over loopback TCP
// and inproc. Every wait is bounded by `patience`.
import CZMQ
import Foundation
import Testing
@testable import Protocol

@Suite struct TransportTests {
    /// Every message, worker → coordinator and coordinator → worker.
    @Test(arguments: ["tcp://127.0.0.1:*", "inproc"])
    func everyMessageCrossesBothWays(_ bind: String) throws {
        let context = try ZMQContext()
        let logs = CapturedLogs()
        let coordinator = try CoordinatorEndpoint(
            context, bind: bind == "inproc" ? inprocEndpoint("every") : bind, timing: testTiming(), logger: logs.logger())
        if bind.hasPrefix("tcp") { #expect(coordinator.endpoint.hasPrefix("tcp://127.0.0.1:") && !coordinator.endpoint.hasSuffix("*")) }
        let worker = try WorkerEndpoint(context, connect: coordinator.endpoint, workerID: "worker-a", timing: testTiming(),
                                        logger: logs.logger())
        // Workers present no routing id: the connection's, made by libzmq, is the same for all its messages.
        var connection: PeerID?
        for type in MessageType.allCases {
            try worker.send(sample(type))
            let received = try #require(try coordinator.receive(timeout: patience), "\(type) did not arrive")
            #expect(received.peer == connection ?? received.peer && received.user == nil)
            connection = received.peer
            #expect(try received.message.get() == sample(type))
        }
        let peer = try #require(connection)
        for type in MessageType.allCases {
            try coordinator.send(sample(type), to: peer)
            let received = try #require(try worker.receive(timeout: patience), "\(type) did not arrive")
            #expect(try received.get() == sample(type))
        }
        #expect(coordinator.rejections.total == 0 && worker.rejections.total == 0)
    }

    /// Garbage, truncated JSON, an unknown type and other versions: each refused by kind, counted, logged and
    /// answered (once for a wrong version, never for an error); the ROUTER keeps serving a good worker.
    @Test func misbehavingPeersAreAnsweredAndTheRouterKeepsServing() throws {
        let context = try ZMQContext()
        let logs = CapturedLogs()
        let coordinator = try CoordinatorEndpoint(context, bind: "tcp://127.0.0.1:*", timing: testTiming(), logger: logs.logger())
        let raw = try ZMQSocket(context, .dealer, options: .init(timing: testTiming(), identity: "raw"))
        try raw.connect(coordinator.endpoint)
        let good = try Message.encode(sample(.hello))
        let truncated = good[2].prefix(good[2].count - 7)
        let cases: [(frames: [Data], refusal: ProtocolError?, answered: Bool)] = [
            ([Data("GET / HTTP/1.1\r\n\r\n".utf8)], .badFrameCount(1), true),
            ([Data("\u{0}\u{ff}junk".utf8), good[1], good[2]], .badHeader(Data("\u{0}\u{ff}junk".utf8)), true),
            ([good[0], good[1], truncated], nil, true),
            ([good[0], Data([0x42]), Data("{}".utf8)], .unknownType(Data([0x42])), true),
            ([Data("factsweep/1".utf8), good[1], good[2]], .wrongVersion(found: 1), true),
            ([Data("factsweep/1".utf8), good[1], good[2]], .wrongVersion(found: 1), false),
            ([good[0], Data([MessageType.error.rawValue]), Data("not json".utf8)], nil, false),
        ]
        for (index, item) in cases.enumerated() {
            try raw.send(item.frames)
            let received = try #require(try coordinator.receive(timeout: patience), "case \(index) did not arrive")
            #expect(received.peer == PeerID(workerID: "raw"))
            guard case .failure(let error) = received.message else { Issue.record("case \(index) accepted"); continue }
            if let refusal = item.refusal { #expect(error == refusal, "case \(index)") } else {
                #expect(error.label == "malformed_body", "case \(index): \(error)")
            }
            let answer = try raw.receive(timeout: item.answered ? patience : .milliseconds(200))
            if item.answered {
                let frames = try #require(answer, "case \(index) was not answered")
                #expect(try Message.decode(frames) == .error(.init(reason: error.description)))
            } else {
                #expect(answer == nil, "case \(index) should not be answered")
            }
        }
        #expect(coordinator.rejections.counts == ["bad_frame_count": 1, "bad_header": 1, "malformed_body": 2,
                                                  "unknown_type": 1, "wrong_version": 2])
        #expect(logs.all.filter { $0.level == .warning && $0.metadata["peer"] == "raw" }.count == cases.count)

        try expectServes(coordinator, context, workerID: "worker-b")
        // A turned-away peer that comes back in the current version is served again.
        try raw.send(good)
        #expect(try coordinator.receive(timeout: patience).map { try $0.message.get() } == sample(.hello))
    }

    /// Over TCP an oversized frame never reaches the application: libzmq disconnects the sender. Its DEALER
    /// reconnects by itself, and the ROUTER goes on serving it and others.
    @Test func anOversizedFrameDisconnectsItsSenderOverTCP() throws {
        let context = try ZMQContext()
        let limit = 64 << 10
        let coordinator = try CoordinatorEndpoint(context, bind: "tcp://127.0.0.1:*", timing: testTiming(maxMessageBytes: limit),
                                                  logger: CapturedLogs().logger())
        let events = try monitor(coordinator.socket, context, events: ZMQ_EVENT_ACCEPTED | ZMQ_EVENT_DISCONNECTED)
        let big = try ZMQSocket(context, .dealer, options: .init(timing: testTiming(), identity: "big"))
        try big.connect(coordinator.endpoint)
        #expect(try awaitEvent(ZMQ_EVENT_ACCEPTED, events))

        let good = try Message.encode(sample(.ready))
        try big.send([good[0], good[1], Data(repeating: 0x20, count: limit + 1)])
        #expect(try awaitEvent(ZMQ_EVENT_DISCONNECTED, events))
        #expect(try coordinator.receive(timeout: .milliseconds(200)) == nil, "libzmq delivers nothing of it")
        #expect(coordinator.rejections.total == 0, "the application never sees it to count it")

        try expectServes(coordinator, context, workerID: "worker-c")
        try big.send(good)
        let back = try #require(try coordinator.receive(timeout: patience), "the reconnected sender is served")
        #expect(back.peer == PeerID(workerID: "big") && back.message == .success(sample(.ready)))
    }

    /// inproc bypasses libzmq's size check; decode enforces the same limit and the coordinator answers.
    @Test func anOversizedFrameOverInprocIsRefusedByDecode() throws {
        let context = try ZMQContext()
        let limit = 64 << 10
        let coordinator = try CoordinatorEndpoint(context, bind: inprocEndpoint("oversized"),
                                                  timing: testTiming(maxMessageBytes: limit), logger: CapturedLogs().logger())
        let raw = try ZMQSocket(context, .dealer, options: .init(timing: testTiming(), identity: "big"))
        try raw.connect(coordinator.endpoint)
        let good = try Message.encode(sample(.ready))
        try raw.send([good[0], good[1], Data(repeating: 0x20, count: limit + 1)])
        let received = try #require(try coordinator.receive(timeout: patience))
        #expect(received.message == .failure(.oversized(bytes: limit + 1, limit: limit)))
        let answer = try #require(try raw.receive(timeout: patience))
        #expect(try Message.decode(answer).type == .error)
    }

    /// A worker whose coordinator goes away (socket closed, endpoint re-bound) delivers what it sent meanwhile.
    @Test func aDealerDeliversAfterItsRouterIsBack() throws {
        let context = try ZMQContext()
        let logs = CapturedLogs()
        var coordinator = try CoordinatorEndpoint(context, bind: "tcp://127.0.0.1:*", timing: testTiming(), logger: logs.logger())
        let endpoint = coordinator.endpoint
        let worker = try WorkerEndpoint(context, connect: endpoint, workerID: "worker-d", timing: testTiming(), logger: logs.logger())
        let events = try monitor(worker.socket, context, events: ZMQ_EVENT_DISCONNECTED)
        try worker.send(sample(.hello))
        #expect(try coordinator.receive(timeout: patience).map { try $0.message.get() } == sample(.hello))

        coordinator.close()
        // Wait until the worker has seen the loss, so that what follows is queued rather than written to a
        // dying connection (where it could be lost: the reason results are resent until acknowledged).
        #expect(try awaitEvent(ZMQ_EVENT_DISCONNECTED, events))
        try worker.send(sample(.progress))

        coordinator = try rebind(endpoint, context, logs)
        let received = try #require(try coordinator.receive(timeout: patience), "nothing arrived after the re-bind")
        #expect(try received.message.get() == sample(.progress))
        try coordinator.send(sample(.ack), to: received.peer)
        #expect(try worker.receive(timeout: patience).map { try $0.get() } == sample(.ack))
    }

    /// Two connections under one worker id are two peers: workers present no routing id, so libzmq gives each
    /// connection its own and neither can take the other's over (ROUTER_HANDOVER is off; docs/security.md).
    @Test func aSecondConnectionUnderAWorkerIDCannotTakeTheFirstOver() throws {
        let context = try ZMQContext()
        let coordinator = try CoordinatorEndpoint(context, bind: "tcp://127.0.0.1:*", timing: testTiming(), logger: CapturedLogs().logger())
        let first = try WorkerEndpoint(context, connect: coordinator.endpoint, workerID: "worker-e", timing: testTiming(),
                                       logger: CapturedLogs().logger())
        try first.send(sample(.hello))
        let firstPeer = try #require(try coordinator.receive(timeout: patience)).peer
        let second = try WorkerEndpoint(context, connect: coordinator.endpoint, workerID: "worker-e", timing: testTiming(),
                                        logger: CapturedLogs().logger())
        try second.send(sample(.hello))
        let secondPeer = try #require(try coordinator.receive(timeout: patience)).peer
        #expect(firstPeer != secondPeer)
        try coordinator.send(sample(.assign), to: firstPeer)
        #expect(try first.receive(timeout: patience).map { try $0.get() } == sample(.assign))
        #expect(try second.receive(timeout: .milliseconds(200)) == nil)
        #expect(coordinator.isConnected(firstPeer) && coordinator.isConnected(secondPeer))
        first.close()
        let deadline = ContinuousClock.now + patience
        while coordinator.isConnected(firstPeer), ContinuousClock.now < deadline { Thread.sleep(forTimeInterval: 0.01) }
        #expect(!coordinator.isConnected(firstPeer), "a closed connection is seen as closed")
        #expect(coordinator.isConnected(secondPeer))
    }

    @Test func pollWaitsOnSeveralSocketsAndErrorsAreValues() throws {
        let context = try ZMQContext()
        let coordinator = try CoordinatorEndpoint(context, bind: inprocEndpoint("poll"), timing: testTiming(), logger: CapturedLogs().logger())
        let quiet = try ZMQSocket(context, .dealer)
        try quiet.connect(coordinator.endpoint)
        let talker = try ZMQSocket(context, .dealer, options: .init(timing: testTiming(), identity: "talker"))
        try talker.connect(coordinator.endpoint)
        #expect(try ZMQSocket.poll([quiet, talker, coordinator.socket], timeout: .milliseconds(50)).isEmpty)
        try talker.send(try Message.encode(sample(.ready)))
        #expect(try ZMQSocket.poll([quiet, talker, coordinator.socket], timeout: patience) == [2])
        quiet.close()
        #expect(throws: ZMQError.self) { try quiet.send([Data()]) }
        let taken = try ZMQSocket(context, .router)
        let endpoint = try taken.bind("tcp://127.0.0.1:*")
        #expect(throws: ZMQError(operation: "zmq_bind(\(endpoint))", code: EADDRINUSE)) {
            try ZMQSocket(context, .router).bind(endpoint)
        }
    }

    // MARK: - Helpers

    /// A fresh worker says hello through `coordinator` and is answered.
    private func expectServes(_ coordinator: CoordinatorEndpoint, _ context: ZMQContext, workerID: String) throws {
        let worker = try WorkerEndpoint(context, connect: coordinator.endpoint, workerID: workerID, timing: testTiming(),
                                        logger: CapturedLogs().logger())
        try worker.send(sample(.hello))
        let received = try #require(try coordinator.receive(timeout: patience), "\(workerID) was not served")
        #expect(received.message == .success(sample(.hello)))
        try coordinator.send(sample(.ready), to: received.peer)
        #expect(try worker.receive(timeout: patience).map { try $0.get() } == sample(.ready))
    }

    /// A PAIR socket reading `socket`'s monitor events.
    private func monitor(_ socket: ZMQSocket, _ context: ZMQContext, events: Int32) throws -> ZMQSocket {
        let endpoint = inprocEndpoint("monitor")
        try socket.monitor(endpoint, events: events)
        let reader = try ZMQSocket(context, .pair)
        try reader.connect(endpoint)
        return reader
    }

    /// Whether `monitor` reports `event` within `patience` (other events are skipped).
    private func awaitEvent(_ event: Int32, _ monitor: ZMQSocket) throws -> Bool {
        let deadline = ContinuousClock.now + patience
        while let frames = try monitor.receive(timeout: deadline - ContinuousClock.now) {
            if ZMQMonitorEvent(frames)?.event == UInt16(event) { return true }
        }
        return false
    }

    /// Binds `endpoint` again; the port can stay busy for a moment after close, so retry for a bounded time.
    private func rebind(_ endpoint: String, _ context: ZMQContext, _ logs: CapturedLogs) throws -> CoordinatorEndpoint {
        for _ in 0..<100 {
            let endpoint = Result { () throws(ZMQError) in
                try CoordinatorEndpoint(context, bind: endpoint, timing: testTiming(), logger: logs.logger())
            }
            if case .failure(let error) = endpoint, error.code == EADDRINUSE {
                Thread.sleep(forTimeInterval: 0.05)
                continue
            }
            return try endpoint.get()
        }
        return try CoordinatorEndpoint(context, bind: endpoint, timing: testTiming(), logger: logs.logger())
    }
}
