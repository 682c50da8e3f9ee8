// The coordinator's batch order: a waiting `ready` is handled before older
// results (its worker is idle until answered), but never before its own
// worker's `hello`.
import Foundation
import Testing
@testable import Coordinator
@testable import Protocol

@Suite struct BatchOrderTests {
    static func waiting(_ peer: String, _ message: Message) throws -> UndecodedMessage {
        UndecodedMessage(peer: PeerID(workerID: peer), frames: try Message.encode(message, maxFrameBytes: 1 << 20))
    }

    @Test func readiesGoFirstExceptBehindTheirOwnHello() throws {
        let inbox = [
            try Self.waiting("a", CoordinatorServerTests.progress(1, "t1", 7, epoch: 1)),
            try Self.waiting("b", .ready(.init(freeSlots: 1))),
            try Self.waiting("c", CoordinatorServerTests.hello("c")),
            try Self.waiting("a", .heartbeat(.init(running: []))),
            try Self.waiting("c", .ready(.init(freeSlots: 1))),
            try Self.waiting("a", .ready(.init(freeSlots: 1))),
        ]
        #expect(inbox.map(\.claimedType) == [.progress, .ready, .hello, .heartbeat, .ready, .ready])
        #expect(CoordinatorServer.readies(in: inbox) == [1, 5])
        // An unreadable message claims no type and is never taken for a ready.
        let garbage = UndecodedMessage(peer: PeerID(workerID: "e"), frames: [Data("factsweep/1".utf8), Data([0x02])])
        #expect(garbage.claimedType == nil && CoordinatorServer.readies(in: [garbage]).isEmpty)
    }
}
