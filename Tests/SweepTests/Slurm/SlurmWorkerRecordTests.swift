// A worker's Slurm job and array task, from its announcement to the run
// database and to the worker list `factsweep status` shows.
import Foundation
import Testing
@testable import Store

struct SlurmWorkerRecordTests {
    @Test func theSlurmJobOfEachWorkerIsListed() throws {
        let fixture = try StoreFixture()
        try fixture.store.announceWorker(WorkerAnnouncement(id: "slurm-4711_3", host: "node17", pid: 12, threads: 4, protocolVersion: "1",
                                                            slurmJobID: "4711", slurmArrayTaskID: 3))
        try fixture.store.announceWorker(WorkerAnnouncement(id: "laptop-77", host: "laptop", pid: 77, threads: 2, protocolVersion: "1"))
        try fixture.store.setWorkerStatus("laptop-77", .lost)
        let listing = try fixture.store.workerListing()
        #expect(listing.map(\.id) == ["slurm-4711_3", "laptop-77"])
        #expect(listing.map(\.squeueID) == ["4711_3", nil])
        #expect(listing.map(\.status) == [.connected, .lost])
        // A reconnection refreshes the row, Slurm ids included.
        try fixture.store.announceWorker(WorkerAnnouncement(id: "laptop-77", host: "laptop", pid: 78, threads: 2, protocolVersion: "1",
                                                            slurmJobID: "5000"))
        #expect(try fixture.store.workerListing().first { $0.id == "laptop-77" }?.squeueID == "5000")
    }
}
