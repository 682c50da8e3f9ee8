// Real processes with CURVE keys: a keyed sweep (`factsweep coordinator` and
// two `factsweep worker --simulate`) completes while two outsiders — one with
// no key, one with a key not on the allow-list — say hello and ready for 1000
// trials the whole time and get nothing; the coordinator never sees their
// messages and logs each refusal. tshark records the coordinator's port: with
// keys it holds no protocol header or JSON body; without keys (the control)
// it does. And the secure default: a coordinator refuses a non-loopback
// address without keys unless --insecure, which it warns about.
import Foundation
import Logging
import Testing
@testable import Coordinator
@testable import Protocol
import TestSupport

@Suite(.serialized) struct KeyedSweepTests {
    /// A cluster.json on loopback `port`, with `keys` when given.
    static func cluster(in dir: URL, port: Int, keys: TestKeys?) throws -> URL {
        let url = dir.appendingPathComponent("cluster.json")
        let run = dir.appendingPathComponent("run")
        try """
            {"coordinator": {"bind": "tcp://127.0.0.1:\(port)", "connect": "tcp://127.0.0.1:\(port)"},
             "run_directory": "\(run.path)", "checkpoint_directory": "\(run.path)/checkpoints", "hosts": [],
             \(keys.map { $0.clusterJSON + "," } ?? "")
             "timing": {"heartbeat_interval_seconds": 0.2, "heartbeat_liveness": 5, "lease_expiry_seconds": 20,
                        "reconnect_initial_seconds": 0.1, "reconnect_max_seconds": 0.5}}
            """.write(to: url, atomically: true, encoding: .utf8)
        return url
    }

    /// What a sweep under capture left: the capture's bytes, the coordinator's log, and what the outsiders received.
    struct Observed {
        let capture: Data
        let coordinatorLog: String
        let outsidersReceived: [String]
        let run: URL
    }

    /// A coordinator and two simulated workers on loopback, under capture, with outsiders probing throughout.
    static func sweep(keys: TestKeys?, outsiders: [(id: String, security: WorkerSecurity?)], in dir: TemporaryDirectory) throws -> Observed {
        let port = TestPorts.unused()
        let cluster = try Self.cluster(in: dir.url, port: port, keys: keys)
        let spec = try SimulatedSweepTests.spec(in: dir.url)
        let capture = try PacketCapture(port: port, file: dir.file("capture.pcap"), log: dir.file("tshark.log"))
        let factsweep = try FactSweepBinary.url()
        var children: [Child] = []
        defer { for child in children.reversed() { child.stop() } }
        let coordinator = try Child(executable: factsweep, ["coordinator", spec.path, "--cluster", cluster.path], log: dir.file("coordinator.log"))
        children.append(coordinator)

        let context = try ZMQContext()
        let endpoint = "tcp://127.0.0.1:\(port)"
        let probes = try outsiders.map {
            try WorkerEndpoint(context, connect: endpoint, workerID: $0.id, security: $0.security, logger: Logger(label: "outsider"))
        }
        var received: [String] = []
        func probe(for seconds: Double) {
            let until = Date().addingTimeInterval(seconds)
            repeat {
                for (probe, outsider) in zip(probes, outsiders) {
                    // Sends fail (EAGAIN) while no handshake has succeeded: that is the point.
                    try? probe.send(.hello(.init(workerID: outsider.id, session: "s", host: "outside", pid: 1, threads: 1000)))
                    try? probe.send(.ready(.init(freeSlots: 1000)))
                    if let message = try? probe.receive(timeout: .milliseconds(50)) { received.append("\(outsider.id): \(message)") }
                }
            } while Date() < until
        }
        probe(for: 2)
        for id in ["w0", "w1"] {
            children.append(try Child(executable: factsweep, ["worker", "--connect", endpoint, "--threads", "1", "--id", id,
                                                              "--cluster", cluster.path, "--simulate", "0.05"],
                                      log: dir.file("\(id).log")))
        }
        let deadline = Date().addingTimeInterval(90)
        while coordinator.isRunning && Date() < deadline { probe(for: 0.5) }
        let logs = children.map { "== \($0.arguments.prefix(1).joined())\n\($0.output.suffix(3000))" }.joined(separator: "\n")
        #expect(coordinator.status == 0, "the coordinator should finish the sweep\n\(logs)")
        for probe in probes { probe.close() }
        return Observed(capture: try capture.finish(), coordinatorLog: coordinator.output, outsidersReceived: received,
                        run: dir.url.appendingPathComponent("run"))
    }

    /// The protocol's header and JSON keys every sweep sends. (Each is 6 bytes or more: a short marker
    /// like `{"` turns up by chance in a capture's worth of ciphertext.)
    static let plaintextMarkers = [ProtocolVersion.headerPrefix, "\"worker_id\"", "\"message_id\"", "\"free_slots\"", "\"trial\"", "\"loss\""]

    /// Whether `data` contains `text`'s bytes.
    static func contains(_ data: Data, _ text: String) -> Bool { data.range(of: Data(text.utf8)) != nil }

    @Test func keyedSweepCompletesWhileOutsidersGetNothingAndNothingIsPlaintext() throws {
        let dir = try TemporaryDirectory()
        let keys = try TestKeys(in: dir.url, outsider: true)
        let outsiderKeys = try WorkerSecurity(keyPair: KeyFiles.readKeyPair(keys.dir.appendingPathComponent("outsider.key")),
                                              coordinatorKey: KeyFiles.publicKey(keys.coordinatorPublicKey.path))
        let observed = try Self.sweep(keys: keys, outsiders: [("no-key", nil), ("unlisted-key", outsiderKeys)], in: dir)

        // The sweep's results are complete and correct, and only the keyed workers ever ran an attempt.
        let db = observed.run.appendingPathComponent("run.db")
        try SweepProcessTests.expectComplete(db, trials: 20, epochs: 3)
        let workers = try SweepProcessTests.rows(db, "SELECT DISTINCT worker_id AS w FROM attempts ORDER BY w").map { $0["w"] as String }
        #expect(Set(workers).isSubset(of: ["w0", "w1"]) && !workers.isEmpty, "\(workers)")
        // The outsiders got no assign, no ack, not even an error: no message of theirs reached the coordinator.
        #expect(observed.outsidersReceived.isEmpty, "\(observed.outsidersReceived)")
        let stats = try CoordinatorStatistics.read(from: observed.run.appendingPathComponent("coordinator-stats.json"))
        #expect(stats.workersSeen == 2 && stats.received["rejected", default: 0] == 0, "\(stats)")
        #expect(!observed.coordinatorLog.contains("no-key") && !observed.coordinatorLog.contains("unlisted-key"))
        // Each refusal is logged and counted: the unlisted key by ZAP, the keyless peer at the handshake.
        #expect(observed.coordinatorLog.contains("public key not on the allow-list"), "\(observed.coordinatorLog.suffix(3000))")
        #expect(observed.coordinatorLog.contains("handshake failed before authentication"), "\(observed.coordinatorLog.suffix(3000))")

        // An eavesdropper on the port reads neither the protocol's header nor a JSON body.
        #expect(observed.capture.count > 20_000, "the capture should hold the sweep's traffic (\(observed.capture.count) bytes)")
        for text in Self.plaintextMarkers {
            #expect(!Self.contains(observed.capture, text), "plaintext \(text) in the capture")
        }
    }

    /// The control for the capture check: without keys (on loopback, allowed) the same sweep is readable on the wire.
    @Test func withoutKeysTheCaptureShowsTheProtocol() throws {
        let dir = try TemporaryDirectory()
        let observed = try Self.sweep(keys: nil, outsiders: [], in: dir)
        try SweepProcessTests.expectComplete(observed.run.appendingPathComponent("run.db"), trials: 20, epochs: 3)
        for text in Self.plaintextMarkers { #expect(Self.contains(observed.capture, text), "no plaintext \(text) in the capture") }
    }

    @Test func coordinatorRefusesAnOpenAddressWithoutKeysUnlessInsecure() throws {
        let dir = try TemporaryDirectory()
        let spec = try SimulatedSweepTests.spec(in: dir.url)
        let port = TestPorts.unused()
        let run = dir.file("run")
        let refused = try FactSweepBinary.run(["coordinator", spec.path, "--bind", "tcp://0.0.0.0:\(port)", "--run-dir", run.path])
        #expect(refused.status != 0 && refused.stderr.contains("without keys"), "\(refused.stderr)")
        #expect(!FileManager.default.fileExists(atPath: run.path), "a refused start should leave no run directory")

        // --insecure starts, with a warning.
        let insecure = try Child(executable: try FactSweepBinary.url(),
                                 ["coordinator", spec.path, "--bind", "tcp://0.0.0.0:\(port)", "--run-dir", run.path, "--insecure"],
                                 log: dir.file("insecure.log"))
        defer { insecure.stop() }
        let deadline = Date().addingTimeInterval(30)
        while !insecure.output.contains("listening on") && insecure.isRunning && Date() < deadline { usleep(50_000) }
        #expect(insecure.output.contains("listening on") && insecure.output.contains("--insecure: no encryption"), "\(insecure.output)")
    }

    @Test func keyFilesAreWrittenPrivateAndRefusedWhenOthersCanRead() throws {
        let dir = try TemporaryDirectory()
        let keys = try TestKeys(in: dir.url)
        for file in [keys.coordinatorKey, keys.workerKey, keys.allowList] {
            let mode = try #require(try FileManager.default.attributesOfItem(atPath: file.path)[.posixPermissions] as? Int)
            #expect(mode == 0o600, "\(file.lastPathComponent): \(String(mode, radix: 8))")
        }
        #expect(throws: Never.self) { try KeyFiles.readKeyPair(keys.coordinatorKey) }
        chmod(keys.coordinatorKey.path, 0o640)
        #expect(throws: KeyError.self) { try KeyFiles.readKeyPair(keys.coordinatorKey) }
        let spec = try SimulatedSweepTests.spec(in: dir.url)
        let cluster = try Self.cluster(in: dir.url, port: TestPorts.unused(), keys: keys)
        let refused = try FactSweepBinary.run(["coordinator", spec.path, "--cluster", cluster.path])
        #expect(refused.status != 0 && refused.stderr.contains("chmod 600"), "\(refused.stderr)")
    }
}
