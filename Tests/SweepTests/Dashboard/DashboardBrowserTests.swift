// The live dashboard in a real headless browser (Debian's chromium) against a
// running simulated sweep started by `factsweep run --simulate --serve`: the
// page loads with no console output at all (errors, CSP refusals, failed
// loads), and the epochs counter it shows grows while epochs land — at a
// phone width and at a desktop width; a run of more trials than the page lists
// shows the first and says so, and a filter in the address finds the others.
// Fails, never skips, without chromium.
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import GRDB
import Testing
import TestSupport

@Suite(.serialized) struct DashboardBrowserTests {
    /// 8 trials × 60 epochs of 0.5 s on 2 workers: about 2 minutes of sweep, longer than the browser checks
    /// on a loaded machine; the test interrupts it when done.
    static func spec(in dir: URL) throws -> URL {
        try SimulatedSweepTests.simulatedSpec(in: dir, name: "live", """
            "defaults": {"epochs": 60, "eval_every": 5, "eval_epochs": [0, 1, 2], "checkpoint_every": 10},
            "conditions": [{"name": "lora", "method": "lora"}, {"name": "ia3", "method": "ia3"}],
            "grid": {"seed": [0, 1, 2, 3]}
            """)
    }

    static func chromium() throws -> String {
        for candidate in ["/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"]
        where FileManager.default.isExecutableFile(atPath: candidate) {
            return candidate
        }
        throw DashboardTestFailure("no chromium: scripts/setup.sh --tests installs Debian's (apt-get install chromium)")
    }

    /// What headless chromium made of `url` at `width`: the DOM after load, and every console line it logged.
    static func load(_ url: URL, width: Int, height: Int = 900, screenshot: URL? = nil) throws -> (dom: String, console: [String]) {
        let profile = FileManager.default.temporaryDirectory.appendingPathComponent("factsweep-chromium-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: profile) }
        // --no-sandbox: tests run as root, where chromium's sandbox refuses to start.
        let arguments = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--enable-logging=stderr", "--v=0",
                         "--user-data-dir=\(profile.path)", "--window-size=\(width),\(height)",
                         screenshot.map { "--screenshot=\($0.path)" } ?? "--dump-dom", url.absoluteString]
        let result = try Command.run(URL(fileURLWithPath: try chromium()), arguments, timeout: 180)
        return (result.stdout, result.stderr.split(separator: "\n").filter { $0.contains(":CONSOLE") }.map(String.init))
    }

    /// The text of the element with `id` in a dumped DOM.
    static func text(of id: String, in dom: String) -> String? {
        guard let start = dom.range(of: "id=\"\(id)\"") else { return nil }
        guard let open = dom[start.upperBound...].firstIndex(of: ">") else { return nil }
        let rest = dom[dom.index(after: open)...]
        return rest.firstIndex(of: "<").map { String(rest[..<$0]) }
    }

    static func get(_ url: URL) throws -> (status: Int, body: Data) {
        let box = ResponseBox()
        URLSession.shared.dataTask(with: url) { data, response, _ in
            box.set((response as? HTTPURLResponse)?.statusCode ?? 0, data ?? Data())
        }.resume()
        return try box.wait()
    }

    @Test func pageLoadsCleanAndFollowsTheSweepOnPhoneAndDesktop() throws {
        _ = try Self.chromium()
        let dir = try TemporaryDirectory()
        let run = dir.url.appendingPathComponent("run")
        let sweep = try FactSweepChild(["run", try Self.spec(in: dir.url).path, "--workers", "2", "--threads-per-worker", "1",
                                        "--simulate", "0.5", "--run-dir", run.path, "--heartbeat", "0.2", "--lease", "20",
                                        "--serve", "--port", "0"], log: dir.file("run.log"))
        defer {
            // As Ctrl-C would: the run shuts its workers down before it exits, so none is left behind.
            kill(sweep.pid, SIGINT)
            if !sweep.wait(seconds: 60) { sweep.stop() }
        }
        #expect(sweep.waitForOutput("dashboard: http://127.0.0.1:", seconds: 60), "\(sweep.output)")
        let line = try #require(sweep.output.split(separator: "\n").first { $0.hasPrefix("dashboard: ") })
        let url = try #require(URL(string: String(line.dropFirst("dashboard: ".count))))

        // The JSON endpoints, as the page uses them.
        let state = try Self.get(url.appendingPathComponent("api/state"))
        #expect(state.status == 200)
        let object = try #require(try JSONSerialization.jsonObject(with: state.body) as? [String: Any])
        #expect((object["charts"] as? [Any])?.count == 3 && (object["trials"] as? [Any])?.count == 8)
        #expect(try Self.get(url.appendingPathComponent("api/trials/no-such-trial")).status == 404)

        for (width, name) in [(390, "phone"), (1280, "desktop")] {
            let first = try Self.load(url, width: width)
            #expect(first.console.isEmpty, "\(name): \(first.console)")
            let before = try #require(Self.text(of: "epochs-recorded", in: first.dom).flatMap { Int($0) }, "\(name): \(first.dom.prefix(2000))")
            #expect(first.dom.contains("<svg") && first.dom.contains("class=\"trial"), "\(name): charts and trials rendered")
            Thread.sleep(forTimeInterval: 2)
            let second = try Self.load(url, width: width)
            #expect(second.console.isEmpty, "\(name): \(second.console)")
            let after = try #require(Self.text(of: "epochs-recorded", in: second.dom).flatMap { Int($0) })
            #expect(after > before, "\(name): epochs trained stayed at \(before)")
            // A screenshot at the width: the page drew something there.
            let picture = dir.file("\(name).png")
            _ = try Self.load(url, width: width, screenshot: picture)
            let size = (try? FileManager.default.attributesOfItem(atPath: picture.path)[.size] as? Int) ?? 0
            #expect(size > 10_000, "\(name) screenshot is \(size) bytes")
        }
        #expect(sweep.isRunning, "the sweep ended before the checks: make it longer\n\(sweep.output)")
    }

    /// A pending trial refused for settings older builds do not read: the page, served by `factsweep serve`,
    /// grows a "waiting" column in the trials table that says why it waits.
    @Test func aTrialRefusedForUnreadSettingsSaysWhyOnThePage() throws {
        _ = try Self.chromium()
        let dir = try TemporaryDirectory()
        let path = try SyntheticStudy.write(in: dir)
        let (refused, _) = try DashboardReaderTests.refuseRunningTrials(at: path)
        let server = try FactSweepChild(["serve", dir.url.path, "--port", "0"], log: dir.file("serve.log"))
        defer { server.stop() }
        #expect(server.waitForOutput("dashboard: http://127.0.0.1:", seconds: 30), "\(server.output)")
        let line = try #require(server.output.split(separator: "\n").first { $0.hasPrefix("dashboard: ") })
        let url = try #require(URL(string: String(line.dropFirst("dashboard: ".count))))
        let page = try Self.load(url, width: 1280)
        #expect(page.console.isEmpty, "\(page.console)")
        #expect(page.dom.contains("<th class=\"text\">waiting</th>"), "\(page.dom.prefix(4000))")
        // The refused trial's row holds the line, and no other row does (the page's initial JSON holds it too).
        let start = try #require(page.dom.range(of: "data-key=\"\(refused)\""), "\(page.dom.prefix(4000))")
        let row = page.dom[start.upperBound...].components(separatedBy: "</tr>")[0]
        #expect(row.contains("refused by w1, old2: old2 does not read training.future"), "\(row.prefix(2000))")
        let table = try #require(page.dom.range(of: "id=\"trials\"").map { page.dom[$0.upperBound...].components(separatedBy: "</table>")[0] })
        #expect(table.components(separatedBy: "refused by ").count == 2, "\(table.prefix(4000))")
    }

    /// A run of more trials than the page lists: the table holds `trialRowLimit` rows and says so; a
    /// filter in the address lists the trials it matches and counts them.
    @Test func aLargeRunListsTheFirstTrialsAndAFilterFindsOthers() throws {
        _ = try Self.chromium()
        let dir = try TemporaryDirectory()
        let path = try SyntheticStudy.write(in: dir)
        // 600 more trials, copies of the first under other keys and seeds.
        try DatabaseQueue(path: path).write { db in
            try db.execute(sql: """
                WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 600)
                INSERT INTO trials (key, sweep_id, condition, config, model, method, rank, alpha, lr, epochs, seed, batch_size,
                                    retry_limit, created_at, updated_at)
                SELECT 'copy-' || i, sweep_id, condition, json_set(config, '$.training.seed', 100 + i), model, method, rank, alpha,
                       lr, epochs, 100 + i, batch_size, retry_limit, created_at, updated_at
                FROM trials, n WHERE key = (SELECT key FROM trials ORDER BY rowid LIMIT 1)
                """)
        }
        let server = try FactSweepChild(["serve", dir.url.path, "--port", "0"], log: dir.file("serve.log"))
        defer { server.stop() }
        #expect(server.waitForOutput("dashboard: http://127.0.0.1:", seconds: 30), "\(server.output)")
        let line = try #require(server.output.split(separator: "\n").first { $0.hasPrefix("dashboard: ") })
        let url = try #require(URL(string: String(line.dropFirst("dashboard: ".count))))
        let rows = { (dom: String) in dom.components(separatedBy: "<tr class=\"trial").count - 1 }

        let page = try Self.load(url, width: 1280)
        #expect(page.console.isEmpty, "\(page.console)")
        #expect(rows(page.dom) == 500, "\(page.dom.prefix(3000))")
        #expect(Self.text(of: "trials-shown", in: page.dom) == "the first 500 of 610 are listed")
        #expect(Self.text(of: "trials-total", in: page.dom) == "610")

        var filtered = try #require(URLComponents(url: url, resolvingAgainstBaseURL: false))
        filtered.queryItems = [URLQueryItem(name: "filter", value: "copy-59")]
        let found = try Self.load(try #require(filtered.url), width: 1280)
        #expect(found.console.isEmpty, "\(found.console)")
        // copy-59 and copy-590 … copy-599.
        #expect(rows(found.dom) == 11 && found.dom.contains("data-key=\"copy-599\""), "\(found.dom.prefix(3000))")
        #expect(Self.text(of: "trials-shown", in: found.dom) == "11 of 610 trials match")

        // Two words, as the page writes them into its address (a space as %20).
        let twoWords = try Self.load(try #require(URL(string: url.absoluteString + "?filter=COPY-59%20%20pending")), width: 1280)
        #expect(rows(twoWords.dom) == 11 && Self.text(of: "trials-shown", in: twoWords.dom) == "11 of 610 trials match")

        // The endpoint itself: the same filter; one of 200 characters (400 bytes of UTF-8) is run, one of
        // 201 refused; the page itself is served with a refused filter left out.
        filtered.path = "/api/state"
        let state = try Self.get(try #require(filtered.url))
        let object = try #require(try JSONSerialization.jsonObject(with: state.body) as? [String: Any])
        #expect(state.status == 200 && object["trialsMatching"] as? Int == 11 && object["filter"] as? String == "copy-59")
        filtered.queryItems = [URLQueryItem(name: "filter", value: String(repeating: "é", count: 200))]
        let longest = try Self.get(try #require(filtered.url))
        let none = try #require(try JSONSerialization.jsonObject(with: longest.body) as? [String: Any])
        #expect(longest.status == 200 && none["trialsMatching"] as? Int == 0)
        filtered.queryItems = [URLQueryItem(name: "filter", value: String(repeating: "é", count: 201))]
        let refused = try Self.get(try #require(filtered.url))
        #expect(refused.status == 400 && String(decoding: refused.body, as: UTF8.self).contains("longer than 200 characters"))
        filtered.path = "/"
        let unfiltered = try Self.get(try #require(filtered.url))
        #expect(unfiltered.status == 200 && String(decoding: unfiltered.body, as: UTF8.self).contains("id=\"trial-filter\""))
    }
}

/// An HTTP reply handed from URLSession's queue to the test.
private final class ResponseBox: @unchecked Sendable {
    private let lock = NSLock()
    private let done = DispatchSemaphore(value: 0)
    private var reply: (Int, Data)?

    func set(_ status: Int, _ body: Data) {
        lock.withLock { reply = (status, body) }
        done.signal()
    }

    func wait() throws -> (status: Int, body: Data) {
        guard done.wait(timeout: .now() + 30) == .success, let reply = lock.withLock({ reply }) else {
            throw DashboardTestFailure("no HTTP reply within 30 s")
        }
        return reply
    }
}

struct DashboardTestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
