// SlurmEnvironment: the job and array task a worker announces, its worker id
// (new after a requeue) and its CPUs — from the variables Slurm sets.
import Testing
@testable import Protocol
@testable import Worker

struct SlurmEnvironmentTests {
    @Test func anArrayTaskIsNamedAsSqueueShowsIt() throws {
        let slurm = try #require(SlurmEnvironment(["SLURM_JOB_ID": "4715", "SLURM_ARRAY_JOB_ID": "4711", "SLURM_ARRAY_TASK_ID": "3",
                                                   "SLURM_CPUS_PER_TASK": "4"]))
        #expect(slurm.task == Message.SlurmTask(jobID: "4711", arrayTaskID: 3))
        #expect(slurm.task.squeueID == "4711_3")
        #expect(slurm.workerID == "slurm-4711_3")
        #expect(slurm.cpusPerTask == 4)
    }

    @Test func aRequeuedTaskComesBackAsANewWorker() throws {
        let first = try #require(SlurmEnvironment(["SLURM_JOB_ID": "4715", "SLURM_ARRAY_JOB_ID": "4711", "SLURM_ARRAY_TASK_ID": "3"]))
        let requeued = try #require(SlurmEnvironment(["SLURM_JOB_ID": "4715", "SLURM_ARRAY_JOB_ID": "4711", "SLURM_ARRAY_TASK_ID": "3",
                                                      "SLURM_RESTART_COUNT": "2"]))
        #expect(requeued.workerID == "slurm-4711_3-r2")
        #expect(requeued.workerID != first.workerID)
        #expect(requeued.task == first.task)
    }

    @Test func aPlainJobAndNoJob() throws {
        let plain = try #require(SlurmEnvironment(["SLURM_JOB_ID": "99", "SLURM_CPUS_PER_TASK": "0"]))
        #expect(plain.task == Message.SlurmTask(jobID: "99", arrayTaskID: nil) && plain.workerID == "slurm-99")
        #expect(plain.cpusPerTask == nil)
        #expect(SlurmEnvironment(["HOME": "/root"]) == nil)
    }
}
