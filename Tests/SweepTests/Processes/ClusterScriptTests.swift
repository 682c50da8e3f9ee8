// scripts/cluster-up.sh and cluster-down.sh as a user runs them, with a fake
// `factsweep` ($FACTSWEEP) and a local stand-in for ssh ($FACTSWEEP_SSH): the
// scripts' own job — reading cluster.json, starting processes on each host and
// stopping exactly those — without a second machine or a real sweep.
import Foundation
import Testing
import TestSupport
@testable import Coordinator

@Suite struct ClusterScriptTests {
    /// A `factsweep` that only waits, and notes its pid in $FAKE_LOG when SIGTERM stops it.
    static let fakeFactSweep = """
        #!/usr/bin/env bash
        trap 'echo "$$" >>"$FAKE_LOG"; exit 0' TERM
        while :; do sleep 0.1; done
        """
    /// `ssh [-o OPTION]… HOST COMMAND` run here.
    static let localSSH = """
        #!/usr/bin/env bash
        while [ "$1" = -o ]; do shift 2; done
        shift
        exec bash -c "$*"
        """

    /// Execs argv[2] with no signal blocked, as from a terminal, and with argv[1] = "close" no
    /// descriptor but 0–2 open. A Process started from a test thread inherits that thread's blocked
    /// signals (SIGTERM among them: nothing the scripts start could be stopped) and the socket whose
    /// closing tells Foundation that the child has ended, which the scripts' background processes
    /// would hold open for good (closed early, Foundation waits for the exit itself).
    static let cleanStart = """
        import os, signal, sys
        signal.pthread_sigmask(signal.SIG_SETMASK, [])
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
        if sys.argv[1] == "close":
            os.closerange(3, 65536)
        os.execv(sys.argv[2], sys.argv[2:])
        """

    /// Starts `executable ARGUMENTS` in `directory` through `cleanStart`, its output into `output`;
    /// `closeDescriptors` for a command that leaves processes behind.
    static func start(_ executable: URL, _ arguments: [String], in directory: URL, environment: [String: String],
                      closeDescriptors: Bool = false, output: FileHandle? = nil) throws -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "-c", cleanStart, closeDescriptors ? "close" : "keep", executable.path] + arguments
        process.currentDirectoryURL = directory
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        if let output { process.standardOutput = output; process.standardError = output }
        try process.run()
        return process
    }

    /// Runs `script` (under scripts/) with `arguments` from `directory`; its output goes to output-SCRIPT.log there.
    static func runScript(_ script: String, _ arguments: [String], in directory: TemporaryDirectory,
                          environment: [String: String]) throws -> (status: Int32, output: String) {
        let output = directory.file("output-\(script).log")
        _ = FileManager.default.createFile(atPath: output.path, contents: nil)
        let handle = try FileHandle(forWritingTo: output)
        defer { try? handle.close() }
        let process = try start(TestPaths.repositoryRoot.appendingPathComponent("scripts").appendingPathComponent(script),
                                arguments, in: directory.url, environment: environment, closeDescriptors: true, output: handle)
        guard process.waitOrKill(seconds: 900) else {
            return (-1, "\(script) timed out after 900 s\n" + ((try? String(contentsOf: output, encoding: .utf8)) ?? ""))
        }
        return (process.terminationStatus, try String(contentsOf: output, encoding: .utf8))
    }

    /// The pids of one role in cluster.pids ("ROLE HOST PID START").
    static func pids(_ role: String, in file: URL) throws -> [Int32] {
        try String(contentsOf: file, encoding: .utf8).split(separator: "\n").compactMap { line in
            let fields = line.split(separator: " ")
            return fields.first.map(String.init) == role && fields.count >= 4 ? Int32(fields[2]) : nil
        }
    }

    @Test func clusterDownStopsOnlyWhatClusterUpStarted() throws {
        let directory = try TemporaryDirectory()
        let fake = directory.file("factsweep"), ssh = directory.file("ssh")
        for (url, text) in [(fake, Self.fakeFactSweep), (ssh, Self.localSSH)] {
            try text.write(to: url, atomically: true, encoding: .utf8)
            try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: url.path)
        }
        // An address of this test alone: the workers never connect, and no one else's process may match.
        let connect = "tcp://cluster-script-test-\(UUID().uuidString):5555"
        try """
            {"coordinator": {"bind": "tcp://0.0.0.0:5555", "connect": "\(connect)"}, "run_directory": "run",
             "hosts": [{"host": "far-away", "workers": 2},
                       {"host": "localhost", "workers": 1, "threads_per_worker": 2, "model_cache_mib": 512}]}
            """.write(to: directory.file("cluster.json"), atomically: true, encoding: .utf8)
        let stopped = directory.file("stopped.log")
        let environment = ["FACTSWEEP": fake.path, "FACTSWEEP_SSH": ssh.path, "FAKE_LOG": stopped.path]

        // Another sweep's worker, with the very command line cluster-up gives its first remote worker.
        let other = try Self.start(fake, ["worker", "--connect", connect, "--threads", "1", "--id", "far-away-0"],
                                   in: directory.url, environment: environment)
        defer { if other.isRunning { other.terminate(); _ = other.waitOrKill(seconds: 10) } }

        let up = try Self.runScript("cluster-up.sh", ["spec.json", "cluster.json"], in: directory, environment: environment)
        #expect(up.status == 0, "\(up.output)")
        let pidFile = directory.url.appendingPathComponent("run/cluster.pids")
        let workers = try Self.pids("worker", in: pidFile), coordinator = try Self.pids("coordinator", in: pidFile)
        #expect(workers.count == 3 && coordinator.count == 1, "\(up.output)")
        let started = workers + coordinator
        #expect(started.allSatisfy { kill($0, 0) == 0 }, "every started process runs")
        // The host's model_cache_mib reaches its workers only.
        let budgets = try workers.map { pid in
            try String(decoding: Data(contentsOf: URL(fileURLWithPath: "/proc/\(pid)/cmdline")), as: UTF8.self)
                .split(separator: "\0").map(String.init)
        }.map { arguments in arguments.firstIndex(of: "--model-cache-mib").map { arguments[$0 + 1] } }
        #expect(budgets.compactMap { $0 } == ["512"], "\(budgets)")

        let down = try Self.runScript("cluster-down.sh", ["cluster.json"], in: directory, environment: environment)
        #expect(down.status == 0, "\(down.output)")
        // Each fake notes its pid as it handles SIGTERM; give the last one its 0.1 s to notice.
        var noted: [Int32] = []
        for _ in 0..<50 {
            noted = ((try? String(contentsOf: stopped, encoding: .utf8)) ?? "").split(separator: "\n").compactMap { Int32($0) }
            if noted.count >= started.count { break }
            usleep(100_000)
        }
        #expect(noted.sorted() == started.sorted(), "stopped \(noted), started \(started)")
        #expect(other.isRunning, "the other sweep's worker must keep running")
        #expect(!FileManager.default.fileExists(atPath: pidFile.path))
    }

    /// cluster.json is read twice: by scripts/cluster-settings.py, which starts each host's workers, and
    /// by the coordinator and workers (`ClusterConfig.load`). The two take and refuse the same hosts, and
    /// read the same threads per worker (1 to `Message.maxThreads`): a file one accepted and the other refused failed half-way.
    @Test func theScriptAndTheCoordinatorReadEveryHostAlike() throws {
        let directory = try TemporaryDirectory()
        let file = directory.file("cluster.json")
        // (the host entry, the threads per worker both read, or nil: both refuse it)
        let hosts: [(String, Int?)] = [
            (#"{"host": "a", "workers": 1}"#, 1),
            (#"{"host": "a", "workers": 0, "threads_per_worker": 3}"#, 3),
            (#"{"host": "a", "workers": 1, "threads_per_worker": null}"#, 1),
            (#"{"host": "a", "workers": 1, "model_cache_mib": null}"#, 1),
            (#"{"host": "a", "workers": 1, "model_cache_mib": 0}"#, 1),
            (#"{"host": "a", "workers": 1.0, "threads_per_worker": 2.0, "model_cache_mib": 5e2}"#, 2),
            (#"{"host": "a", "workers": 1, "threads_per_worker": 4096}"#, 4096),
            (#"{"host": "a", "workers": 1, "threads_per_worker": 4097}"#, nil),
            (#"{"host": "a", "workers": 1, "threads_per_worker": 9223372036854775807}"#, nil),
            (#"{"host": "a", "workers": 9223372036854775807}"#, 1),
            (#"{"host": "a", "workers": 9223372036854775808}"#, nil),
            (#"{"host": "a", "workers": 1, "threads_per_worker": 9223372036854775808}"#, nil),
            (#"{"host": "a", "workers": 1, "model_cache_mib": 1e30}"#, nil),
            (#"{"host": "a\u001cb", "workers": 1}"#, nil),
            (#"{"host": "a\u0085b", "workers": 1}"#, nil),
            (#"{"host": "a\u0007b", "workers": 1}"#, nil),
            (#"{"host": "a\tb", "workers": 1}"#, nil),
            (#"{"host": "a", "workers": -1}"#, nil),
            (#"{"host": "a", "workers": true}"#, nil),
            (#"{"host": "a", "workers": 1, "threads_per_worker": 0}"#, nil),
            (#"{"host": "a", "workers": 1, "threads_per_worker": 2.5}"#, nil),
            (#"{"host": "a", "workers": 1, "model_cache_mib": -1}"#, nil),
            (#"{"host": "a", "workers": 1, "model_cache_mib": "512"}"#, nil),
            (#"{"host": "a b", "workers": 1}"#, nil),
            (#"{"host": "", "workers": 1}"#, nil),
            (#"{"workers": 1}"#, nil),
        ]
        for (host, threads) in hosts {
            try #"{"coordinator": {"bind": "tcp://*:5555", "connect": "tcp://x:5555"}, "run_directory": "run", "hosts": [\#(host)]}"#
                .write(to: file, atomically: true, encoding: .utf8)
            let script = Process()
            script.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            script.arguments = ["python3", TestPaths.repositoryRoot.appendingPathComponent("scripts/cluster-settings.py").path, file.path]
            let output = Pipe()
            script.standardOutput = output
            script.standardError = output
            try script.run()
            let printed = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            script.waitUntilExit()
            let scriptThreads = script.terminationStatus == 0
                ? printed.split(separator: "\n").last.flatMap { $0.split(separator: " ").dropFirst(2).first }.flatMap { Int($0) } : nil
            let swiftThreads = (try? ClusterConfig.load(file)).map { $0.hosts[0].threadsPerWorker ?? 1 }
            #expect(scriptThreads == threads, "cluster-settings.py on \(host): \(printed)")
            #expect(swiftThreads == threads, "ClusterConfig.load on \(host)")
        }
    }

    @Test func clusterUpRefusesAClusterJSONWithoutHosts() throws {
        let directory = try TemporaryDirectory()
        let fake = directory.file("factsweep")
        try Self.fakeFactSweep.write(to: fake, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: fake.path)
        try #"{"coordinator": {"bind": "tcp://0.0.0.0:5555", "connect": "tcp://x:5555"}, "run_directory": "run"}"#
            .write(to: directory.file("cluster.json"), atomically: true, encoding: .utf8)
        let up = try Self.runScript("cluster-up.sh", ["spec.json", "cluster.json"], in: directory, environment: ["FACTSWEEP": fake.path])
        #expect(up.status != 0)
        #expect(up.output.contains("cluster.json: missing key 'hosts'"), "\(up.output)")
        #expect(!FileManager.default.fileExists(atPath: directory.url.appendingPathComponent("run/cluster.pids").path),
                "nothing is started from a cluster.json it cannot read")
    }
}
