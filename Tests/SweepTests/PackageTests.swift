// The sweep targets link: ZeroMQ and SQLite (GRDB) are available.
import CZMQ
import GRDB
import Testing

@Suite struct SweepPackageTests {
    @Test func zeroMQAndSQLiteAreLinked() throws {
        var major: Int32 = 0, minor: Int32 = 0, patch: Int32 = 0
        zmq_version(&major, &minor, &patch)
        #expect(major >= 4)
        let queue = try DatabaseQueue()
        #expect(try queue.read { try Int.fetchOne($0, sql: "SELECT 1") } == 1)
    }
}
