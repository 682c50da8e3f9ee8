// At-least-once delivery: the worker's outbox resends until acknowledged, the
// coordinator's ledger applies each result once; and a trial's configuration
// arrives byte for byte.
import Core
import Foundation
import Testing
@testable import Protocol
import Trial

@Suite struct DeliveryTests {
    private func progress(_ id: MessageID, epoch: Int) -> Message {
        .progress(.init(messageID: id, trial: "t-0001", attempt: 3,
                        report: EpochReport(epoch: epoch, loss: 1, epochSeconds: 1, trainSeconds: 1)))
    }

    @Test func theOutboxNumbersAndKeepsUntilAcknowledged() {
        var outbox = Outbox(session: "s1")
        let sent = (1...4).map { epoch in outbox.add { progress($0, epoch: epoch) } }
        #expect(sent.map(\.messageID) == [1, 2, 3, 4])
        outbox.acknowledge([1, 3, 99])
        #expect(outbox.unacknowledged == [sent[1], sent[3]])
    }

    @Test func theLedgerAppliesEachIDOncePerSession() {
        var ledger = DeliveryLedger()
        let arrivals: [MessageID] = [1, 3, 2, 3, 1, 4]
        let first = arrivals.map { ledger.firstDelivery(of: $0, from: "w", session: "s1") }
        #expect(first == [true, true, true, false, false, true])
        let otherWorker = ledger.firstDelivery(of: 1, from: "other", session: "s1")
        #expect(otherWorker, "ids are per worker")
        let newSession = ledger.firstDelivery(of: 1, from: "w", session: "s2")
        #expect(newSession, "a restarted worker starts a new session")
    }

    /// The coordinator applies results 1–3 but its ack of 3 is lost; the worker reconnects, says hello and
    /// resends 3, which is acknowledged again and not applied twice.
    /// A refused result is forgotten, so its resend is applied; the ids around it stay seen.
    /// A gap that never closes (ids a restarted coordinator never saw, or a peer numbering sparsely) keeps
    /// at most `maxBeyond` ids; each id is still first delivered once. Before the bound, every id was kept.
    @Test func idsAboveANeverClosingGapAreBounded() {
        var ledger = DeliveryLedger()
        let last = MessageID(DeliveryLedger.maxBeyond * 3)
        var firsts = 0
        for id in stride(from: MessageID(2), through: last, by: 2) where ledger.firstDelivery(of: id, from: "w", session: "s") {
            firsts += 1
        }
        #expect(firsts == DeliveryLedger.maxBeyond * 3 / 2)
        #expect(ledger.idsBeyondGap(of: "w") <= DeliveryLedger.maxBeyond)
        let resent = ledger.firstDelivery(of: last, from: "w", session: "s")
        let older = ledger.firstDelivery(of: last - 2, from: "w", session: "s")
        let next = ledger.firstDelivery(of: last + 1, from: "w", session: "s")
        #expect(!resent && !older && next)
    }

    @Test func aForgottenIDIsAppliedAgainAndOnlyIt() {
        var ledger = DeliveryLedger()
        for id: MessageID in [1, 2, 3, 5] { _ = ledger.firstDelivery(of: id, from: "w", session: "s1") }
        ledger.forget(2, from: "w", session: "s1")
        ledger.forget(5, from: "w", session: "s1")
        ledger.forget(1, from: "w", session: "s2")  // another session: nothing to forget
        let again = ([1, 2, 3, 4, 5, 2, 5] as [MessageID]).map { ledger.firstDelivery(of: $0, from: "w", session: "s1") }
        #expect(again == [false, true, false, true, true, false, false])
    }

    @Test func aResendAfterReconnectingIsAppliedOnce() throws {
        let context = try ZMQContext()
        let coordinator = try CoordinatorEndpoint(context, bind: "tcp://127.0.0.1:*", timing: testTiming(), logger: CapturedLogs().logger())
        var outbox = Outbox()
        var ledger = DeliveryLedger()
        var applied: [MessageID] = []
        var hello = Message.Hello(workerID: "worker-f", session: outbox.session, host: "localhost", pid: 1, threads: 1)

        /// The coordinator's side: apply what is new, ack up to `ackLimit`.
        func serve(_ count: Int, ackLimit: MessageID) throws {
            var session = ""
            for _ in 0..<count {
                let received = try #require(try coordinator.receive(timeout: patience))
                switch try received.message.get() {
                case .hello(let hello): session = hello.session
                case let message:
                    let id = try #require(message.messageID)
                    if ledger.firstDelivery(of: id, from: "worker-f", session: session) { applied.append(id) }
                    if id <= ackLimit { try coordinator.send(.ack(.init(messageIDs: [id])), to: received.peer) }
                }
            }
        }

        var worker = try WorkerEndpoint(context, connect: coordinator.endpoint, workerID: "worker-f", timing: testTiming(),
                                        logger: CapturedLogs().logger())
        try worker.send(.hello(hello))
        for epoch in 1...3 { try worker.send(outbox.add { progress($0, epoch: epoch) }) }
        try serve(4, ackLimit: 2)
        for _ in 0..<2 {
            guard case .ack(let ack)? = try worker.receive(timeout: patience).map({ try $0.get() }) else {
                Issue.record("no ack"); return
            }
            outbox.acknowledge(ack.messageIDs)
        }
        #expect(outbox.unacknowledged.map(\.messageID) == [3])

        worker.close()
        worker = try WorkerEndpoint(context, connect: coordinator.endpoint, workerID: "worker-f", timing: testTiming(),
                                    logger: CapturedLogs().logger())
        hello.held = [.init(trial: "t-0001", attempt: 3, lastEpoch: 3)]
        try worker.send(.hello(hello))
        for message in outbox.unacknowledged { try worker.send(message) }
        try serve(2, ackLimit: 3)
        guard case .ack(let ack)? = try worker.receive(timeout: patience).map({ try $0.get() }) else {
            Issue.record("no ack after the resend"); return
        }
        outbox.acknowledge(ack.messageIDs)
        #expect(outbox.unacknowledged.isEmpty)
        #expect(applied == [1, 2, 3])
    }

    /// The assign carries the config itself, and its JSON inside the body is
    /// the canonical JSON the trial's key is hashed from (the same keys and values).
    @Test func aTrialConfigTravelsAsItsCanonicalJSON() throws {
        var training = TrainingSettings()
        training.method = MethodSettings(kind: .lora, rank: 4)
        training.learningRate = 2e-4
        let config = TrialConfig(model: "models/smollm2-135m.gguf", data: "data/facts.jsonl", training: training,
                                 heldOut: "none")
        let text = String(decoding: try config.canonicalJSON(), as: UTF8.self)
        let frames = try Message.encode(.assign(.init(trial: "t-0001", attempt: 1, config: config)))
        #expect(String(decoding: frames[2], as: UTF8.self).contains(#""config":"# + text))
        guard case .assign(let assign) = try Message.decode(frames) else { Issue.record("not an assign"); return }
        #expect(assign.config == config)
    }
}
