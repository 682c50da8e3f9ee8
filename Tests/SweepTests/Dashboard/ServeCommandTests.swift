// `factsweep serve` on a finished run, as a user starts it: the URL printed,
// the page and its JSON served from run.db (left unchanged), a non-loopback
// --bind refused without --allow-non-loopback, a missing run named.
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Testing
import TestSupport

@Suite(.serialized) struct ServeCommandTests {
    @Test func servesAFinishedRunReadOnly() throws {
        let dir = try TemporaryDirectory()
        let spec = try SimulatedSweepTests.simulatedSpec(in: dir.url, name: "served", """
            "defaults": {"epochs": 2, "eval_every": 1, "checkpoint_every": 2},
            "conditions": [{"name": "lora", "method": "lora"}], "grid": {"seed": [0, 1]}
            """)
        let run = dir.url.appendingPathComponent("run")
        let result = try FactSweepBinary.run(["run", spec.path, "--workers", "2", "--threads-per-worker", "1", "--simulate", "0.02",
                                             "--run-dir", run.path, "--heartbeat", "0.2", "--lease", "20"])
        #expect(result.status == 0, "\(result.stderr)")
        let database = run.appendingPathComponent("run.db")
        let before = try Data(contentsOf: database)

        let server = try FactSweepChild(["serve", run.path, "--port", "0"], log: dir.file("serve.log"))
        defer { server.stop() }
        #expect(server.waitForOutput("dashboard: http://127.0.0.1:", seconds: 30), "\(server.output)")
        let line = try #require(server.output.split(separator: "\n").first { $0.hasPrefix("dashboard: ") })
        let url = try #require(URL(string: String(line.dropFirst("dashboard: ".count))))
        let page = try DashboardBrowserTests.get(url)
        #expect(page.status == 200 && String(decoding: page.body, as: UTF8.self).contains("id=\"epochs-recorded\""))
        let state = try DashboardBrowserTests.get(url.appendingPathComponent("api/state"))
        let object = try #require(try JSONSerialization.jsonObject(with: state.body) as? [String: Any])
        let progress = try #require(object["run"] as? [String: Any])
        #expect(progress["epochsRecorded"] as? Int == 4 && progress["totalTrials"] as? Int == 2, "\(progress)")
        let key = try #require(((object["trials"] as? [[String: Any]])?.first?["key"]) as? String)
        let answers = try DashboardBrowserTests.get(url.appendingPathComponent("api/trials/\(key)"))
        let evaluations = try #require((try JSONSerialization.jsonObject(with: answers.body) as? [String: Any])?["evaluations"] as? [[String: Any]])
        #expect(evaluations.map { $0["epoch"] as? Int } == [1, 2])
        // DNS rebinding: another name pointed at 127.0.0.1 reads nothing; the loopback names do.
        let port = try #require(url.port)
        for host in ["rebound.example:\(port)", "127.rebound.example:\(port)", "127.0.0.1.rebound.example"] {
            #expect(try Self.status(port: port, path: "/api/state", host: host) == 421, "\(host)")
        }
        #expect(try Self.status(port: port, path: "/", host: "rebound.example") == 421)
        for host in ["127.0.0.1:\(port)", "localhost:\(port)", "LOCALHOST", "127.0.0.2:\(port)"] {
            #expect(try Self.status(port: port, path: "/api/state", host: host) == 200, "\(host)")
        }
        server.stop()
        #expect(try Data(contentsOf: database) == before, "serving changed run.db")
    }

    /// The status code of `GET path` sent to 127.0.0.1:`port` with `host` as its Host header (URLSession
    /// sets Host itself).
    static func status(port: Int, path: String, host: String) throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        try #require(fd >= 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        try #require(connected == 0, "cannot connect to port \(port)")
        let request = Array("GET \(path) HTTP/1.1\r\nHost: \(host)\r\nConnection: close\r\n\r\n".utf8)
        try #require(write(fd, request, request.count) == request.count)
        var response: [UInt8] = [], buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = read(fd, &buffer, buffer.count)
            if n <= 0 { break }
            response += buffer[..<n]
        }
        let statusLine = String(decoding: response.prefix { $0 != 13 }, as: UTF8.self)
        let parts = statusLine.split(separator: " ")
        return try #require(parts.count >= 2 ? Int(parts[1]) : nil, "no status line in \(statusLine)")
    }

    @Test func refusesNonLoopbackAndMissingRuns() throws {
        let dir = try TemporaryDirectory()
        let open = try FactSweepBinary.run(["serve", dir.url.path, "--bind", "0.0.0.0", "--port", "0"])
        #expect(open.status != 0 && open.stderr.contains("--allow-non-loopback"), "\(open.stderr)")
        let missing = try FactSweepBinary.run(["serve", dir.url.path, "--port", "0"])
        #expect(missing.status != 0 && missing.stderr.contains(dir.url.appendingPathComponent("run.db").path), "\(missing.stderr)")
    }
}
