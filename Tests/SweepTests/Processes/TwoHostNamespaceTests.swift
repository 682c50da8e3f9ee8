// Two hosts on one machine: `factsweep coordinator` in one Linux network
// namespace, two `factsweep worker`s in another, joined by a veth pair, with
// no shared checkpoint directory (adapter states travel inline). The link is
// cut mid-trial and restored. A cut shorter than the lease: each trial is
// finished by its original attempt. A cut longer than the lease: each trial
// is requeued, resumes from its inline checkpoint, and the stale attempt's
// later results are fenced. Either way every epoch is recorded once and no
// trial is done twice. The coordinator and workers use CURVE keys, as across real hosts. Needs root and iproute2's `ip`: without them the suite
// is disabled, except in CI (CI set), where it fails.
import Foundation
import GRDB
import Testing
import TestSupport

/// Whether this machine can make network namespaces, and if not, why.
enum NamespaceSupport {
    static let ip: String? = ["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"]
        .first { FileManager.default.isExecutableFile(atPath: $0) }
    static let problem: String? = {
        if geteuid() != 0 { return "network namespaces need root (this is euid \(geteuid()))" }
        if ip == nil { return "iproute2's ip is not installed (scripts/setup.sh installs it)" }
        return nil
    }()
    /// CI must run these tests: there a missing prerequisite is a failure, not a skip.
    static let required = ProcessInfo.processInfo.environment["CI"] != nil
}

@Suite(.serialized, .enabled(if: NamespaceSupport.problem == nil || NamespaceSupport.required,
                             "\(NamespaceSupport.problem ?? ""); with CI set it fails instead"))
struct TwoHostNamespaceTests {
    static let epochs = 24
    /// Long enough for a worker to load the model on a machine busy with the rest of the suite (its position
    /// does not advance while it loads).
    static let lease = 12.0
    static let port = 5555

    /// What a sweep across the cut link left behind, for a test to check.
    struct Finished {
        let db: URL
        /// Each trial's attempt that was running when the link was cut: its id and its worker.
        let cutAttempts: [String: (id: Int64, worker: String)]
        let workerLogs: [String: String]
    }

    /// Runs a sweep of two adapter trials across the namespaces, cuts the link for `seconds` once both trials have an
    /// inline checkpoint, restores it, checks what must hold after any cut, then hands the rest to `check`.
    static func sweep(tag: String, cutFor seconds: Double, check: (Finished) throws -> Void) throws {
        if let problem = NamespaceSupport.problem {
            Issue.record("CI is set, so this test must run: \(problem)")
            return
        }
        let dir = try TemporaryDirectory()
        let spec = try SweepProcessTests.spec(in: dir.url, epochs: epochs, conditions: """
            {"name": "lora", "method": "lora", "rank": 2, "alpha": 4}, {"name": "ia3", "method": "ia3"}
            """)
        let hosts = try TwoHosts(tag: tag)
        defer { hosts.remove() }
        let run = dir.file("run")
        let cluster = dir.file("cluster.json")
        let endpoint = "tcp://\(TwoHosts.coordinatorAddress):\(port)"
        // Across hosts, keys (secure by default): workers on the allow-list, traffic encrypted.
        let keys = try TestKeys(in: dir.url)
        try """
            {"coordinator": {"bind": "\(endpoint)", "connect": "\(endpoint)"}, "run_directory": "\(run.path)", "hosts": [],
             \(keys.clusterJSON),
             "timing": {"heartbeat_interval_seconds": 0.2, "heartbeat_liveness": 5, "lease_expiry_seconds": \(lease),
                        "reconnect_initial_seconds": 0.1, "reconnect_max_seconds": 0.5}}
            """.write(to: cluster, atomically: true, encoding: .utf8)
        let factsweep = try FactSweepBinary.url().path
        var children: [Child] = []
        defer { for child in children.reversed() { child.stop() } }
        let coordinator = try Child(hosts.inCoordinatorHost([factsweep, "coordinator", spec.path, "--cluster", cluster.path]),
                                    log: dir.file("coordinator.log"))
        children.append(coordinator)
        // Each worker checkpoints into a folder of its own that the coordinator is not told about.
        let workerIDs = ["w0", "w1"]
        for id in workerIDs {
            children.append(try Child(hosts.inWorkerHost([factsweep, "worker", "--connect", endpoint, "--threads", "1", "--id", id,
                                                          "--checkpoint-dir", dir.file("worker-host/\(id)").path,
                                                          "--no-shared-checkpoints", "--cluster", cluster.path]),
                                      log: dir.file("\(id).log")))
        }
        let workers = Array(children.dropFirst())
        func logs() -> String {
            zip(["coordinator"] + workerIDs, children).map { "== \($0)\n" + $1.output.suffix(4000) }.joined(separator: "\n")
        }

        // Both trials running, each with an inline checkpoint recorded and epochs left to train.
        let db = run.appendingPathComponent("run.db")
        var cutAttempts: [String: (id: Int64, worker: String)] = [:]
        let deadline = Date().addingTimeInterval(120)
        while cutAttempts.count < 2 && Date() < deadline && coordinator.isRunning {
            usleep(100_000)
            guard let running = try? SweepProcessTests.rows(db, """
                SELECT t.key AS trial, a.attempt_id AS attempt, a.worker_id AS worker FROM trials t
                JOIN attempts a ON a.attempt_id = t.current_attempt_id
                WHERE t.status = 'running' AND t.checkpoint_blob IS NOT NULL AND t.last_epoch < \(epochs - 3)
                """), running.count == 2 else { continue }
            for row in running { cutAttempts[row["trial"]] = (row["attempt"], row["worker"]) }
        }
        try #require(cutAttempts.count == 2, "both trials should be running with a checkpoint before the cut\n\(logs())")
        try hosts.cut()
        Thread.sleep(forTimeInterval: seconds)
        try hosts.restore()

        let finished = coordinator.wait(seconds: 120)
        #expect(finished && coordinator.status == 0, "the coordinator should finish the sweep once the link is back\n\(logs())")
        for (id, worker) in zip(workerIDs, workers) {
            #expect(worker.wait(seconds: 15), "worker \(id) should exit on the coordinator's shutdown\n\(logs())")
        }
        if ProcessInfo.processInfo.environment["FACTSWEEP_TEST_LOGS"] != nil { print(logs()) }
        guard finished else { return }
        // The cut was felt on both sides (the test would prove nothing otherwise).
        #expect(coordinator.output.contains("worker silent"), "\(logs())")
        for (id, worker) in zip(workerIDs, workers) {
            #expect(worker.output.contains("coordinator silent; reconnecting"), "worker \(id) never noticed the cut\n\(logs())")
        }
        try SweepProcessTests.expectComplete(db, trials: 2, epochs: epochs)
        let completions = try SweepProcessTests.rows(db, "SELECT trial_key, COUNT(*) AS n FROM attempts WHERE outcome = 'done' GROUP BY trial_key")
        #expect(completions.count == 2 && completions.allSatisfy { ($0["n"] as Int?) == 1 }, "no trial may be done twice: \(completions)")
        let byPath = try SweepProcessTests.rows(db, "SELECT key FROM trials WHERE checkpoint_path IS NOT NULL OR checkpoint_blob IS NULL")
        #expect(byPath.isEmpty, "checkpoints should travel inline between the hosts: \(byPath)")
        try check(Finished(db: db, cutAttempts: cutAttempts,
                           workerLogs: Dictionary(uniqueKeysWithValues: zip(workerIDs, workers.map(\.output)))))
    }

    @Test(.timeLimit(.minutes(5))) func cutShorterThanTheLeaseLeavesEachTrialToItsAttempt() throws {
        // Longer than the liveness (1 s), so both sides give the connection up and the workers reconnect.
        try Self.sweep(tag: "s", cutFor: 3) { finished in
            let attempts = try SweepProcessTests.rows(finished.db, "SELECT trial_key, attempt_id, outcome FROM attempts")
            #expect(attempts.count == 2, "no trial should have been requeued: \(attempts)")
            for row in attempts {
                let original = finished.cutAttempts[row["trial_key"]]
                #expect(original?.id == row["attempt_id"] && row["outcome"] == "done", "\(row)")
            }
            let others = try SweepProcessTests.rows(finished.db, """
                SELECT m.trial_key, m.epoch, m.attempt_id FROM epoch_metrics m JOIN trials t ON t.key = m.trial_key
                WHERE m.attempt_id <> t.current_attempt_id
                """)
            #expect(others.isEmpty, "every epoch should come from the original attempt: \(others)")
        }
    }

    @Test(.timeLimit(.minutes(5))) func cutLongerThanTheLeaseRequeuesAndFencesTheStaleAttempt() throws {
        try Self.sweep(tag: "l", cutFor: Self.lease + 5) { finished in
            let allAttempts = try SweepProcessTests.rows(finished.db, "SELECT trial_key, attempt_id, outcome, reason, resumed_from_epoch FROM attempts ORDER BY attempt_id")
            let allEpochs = try SweepProcessTests.rows(finished.db, "SELECT trial_key, epoch, attempt_id FROM epoch_metrics")
            for (trial, original) in finished.cutAttempts {
                let attempts = allAttempts.filter { $0["trial_key"] == trial }
                guard attempts.count >= 2, let lost = attempts.first, let done = attempts.last else {
                    Issue.record("\(trial): a lost attempt, then a done one: \(attempts)")
                    continue
                }
                #expect(lost["attempt_id"] == original.id && lost["outcome"] == "lost" && lost["reason"] == "lease expired", "\(lost)")
                #expect(done["outcome"] == "done", "\(done)")
                // In between, only assignments that never ran: when the link comes back, the coordinator's
                // "hello required" (answering a heartbeat that waited out the cut in the old TCP connection) makes an
                // idle worker say hello and ready again, and a ready already answered can win it a second trial,
                // which the busy worker refuses — or which its next hello, not holding it, gives back.
                for refused in attempts.dropFirst().dropLast() {
                    let reason: String = refused["reason"] ?? ""
                    let outcome: String = refused["outcome"] ?? ""
                    #expect((outcome == "superseded" && reason.contains("is busy with trial"))
                            || (outcome == "lost" && reason.contains("does not hold it")), "\(trial): \(attempts)")
                    let refusedID: Int64 = refused["attempt_id"]
                    #expect(!allEpochs.contains { ($0["attempt_id"] as Int64?) == refusedID }, "an attempt that never ran recorded epochs")
                }
                // The new attempt resumed from the inline checkpoint that the lost one had sent before the cut.
                let resumed: Int = done["resumed_from_epoch"]
                #expect(resumed >= 1, "\(done)")
                // Fenced: the lost attempt kept training through the cut, yet nothing after its checkpoint was kept.
                for row in allEpochs where row["trial_key"] == trial {
                    let epoch: Int = row["epoch"]
                    let expected: Int64 = epoch <= resumed ? original.id : done["attempt_id"]
                    #expect(row["attempt_id"] == expected, "\(trial) epoch \(epoch): \(row)")
                }
                // The original worker came back holding the attempt and was told to drop it.
                let log = finished.workerLogs[original.worker] ?? ""
                let dropped = log.split(separator: "\n").contains { $0.contains("attempt dropped") && $0.contains("attempt=\(original.id) ") }
                #expect(dropped, "worker \(original.worker) should have been told to drop attempt \(original.id)\n\(log.suffix(4000))")
            }
        }
    }
}

/// Two network namespaces joined by a veth pair: the coordinator's host at 10.213.0.1, the workers' at 10.213.0.2.
/// The addresses exist only inside these namespaces.
final class TwoHosts {
    static let coordinatorAddress = "10.213.0.1"
    static let workerAddress = "10.213.0.2"
    let coordinatorNamespace: String, workerNamespace: String
    let coordinatorLink: String, workerLink: String

    /// Makes the namespaces, named for this process and `tag` so that runs and cases never meet.
    init(tag: String) throws {
        let id = "\(getpid())\(tag)"
        coordinatorNamespace = "fs-c-\(id)"; workerNamespace = "fs-w-\(id)"
        // Interface names have at most 15 characters: 3 + a pid of up to 7 digits + the tag.
        coordinatorLink = "fsc\(id)"; workerLink = "fsw\(id)"
        remove()  // a namespace left behind by an earlier process with this pid
        do {
            try Self.ip("netns", "add", coordinatorNamespace)
            try Self.ip("netns", "add", workerNamespace)
            try Self.ip("link", "add", coordinatorLink, "netns", coordinatorNamespace, "type", "veth",
                        "peer", "name", workerLink, "netns", workerNamespace)
            for (namespace, link, address) in [(coordinatorNamespace, coordinatorLink, Self.coordinatorAddress),
                                               (workerNamespace, workerLink, Self.workerAddress)] {
                try Self.ip("-n", namespace, "addr", "add", "\(address)/24", "dev", link)
                try Self.ip("-n", namespace, "link", "set", "lo", "up")
                try Self.ip("-n", namespace, "link", "set", link, "up")
            }
        } catch {
            remove()
            throw error
        }
    }

    /// `ARGUMENTS` run inside the coordinator's namespace (as `ip netns exec` arguments, which execs in place).
    func inCoordinatorHost(_ arguments: [String]) -> [String] { ["netns", "exec", coordinatorNamespace] + arguments }
    func inWorkerHost(_ arguments: [String]) -> [String] { ["netns", "exec", workerNamespace] + arguments }

    /// Unplugs the workers' host: its end of the link goes down, the coordinator's end loses its carrier.
    func cut() throws { try Self.ip("-n", workerNamespace, "link", "set", workerLink, "down") }
    /// Plugs it back in; the address stays on the interface and its route returns.
    func restore() throws { try Self.ip("-n", workerNamespace, "link", "set", workerLink, "up") }

    /// Deletes both namespaces (the veth pair goes with them once no process is left inside); never throws.
    func remove() {
        for namespace in [coordinatorNamespace, workerNamespace] { try? Self.ip("netns", "delete", namespace, quiet: true) }
    }

    struct CommandFailed: Error, CustomStringConvertible {
        let description: String
    }

    static func ip(_ arguments: String..., quiet: Bool = false) throws {
        guard let ip = NamespaceSupport.ip else { throw CommandFailed(description: "ip is not installed") }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: ip)
        process.arguments = arguments
        let err = Pipe()
        process.standardError = err
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        guard process.waitOrKill(seconds: 60) else {
            throw CommandFailed(description: "ip \(arguments.joined(separator: " ")) did not finish within 60 s")
        }
        let message = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        guard process.terminationStatus == 0 else {
            throw CommandFailed(description: "ip \(arguments.joined(separator: " ")) exited with \(process.terminationStatus): \(message)")
        }
    }
}

/// A child process (often run through `ip netns exec`) with its output in a log file; `stop` ends it (SIGTERM, then SIGKILL).
final class Child {
    let child: Spawned
    let log: URL

    convenience init(_ ipArguments: [String], log: URL) throws {
        guard let ip = NamespaceSupport.ip else { throw TwoHosts.CommandFailed(description: "ip is not installed") }
        try self.init(executable: URL(fileURLWithPath: ip), ipArguments, log: log)
    }

    /// Runs `executable ARGUMENTS` from the repository root, its output going to `log`.
    init(executable: URL, _ arguments: [String], log: URL) throws {
        self.log = log
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        child = try Spawned(executable.path, arguments, environment: ProcessInfo.processInfo.environment,
                            directory: TestPaths.repositoryRoot, stdout: log, stderr: log)
    }

    var pid: Int32 { child.pid }
    var arguments: [String] { child.arguments }
    var isRunning: Bool { child.isRunning }
    var status: Int32? { child.status }
    var output: String { (try? String(contentsOf: log, encoding: .utf8)) ?? "" }

    /// Whether the process exited within `seconds`.
    func wait(seconds: Double) -> Bool { child.wait(seconds: seconds) }

    /// SIGTERM, SIGKILL after 5 s, then whatever it started and left (tshark's dumpcap).
    func stop() { child.stop() }
}
