// The dashboard's reads, on the synthetic study's run database: progress,
// the report's charts, trials, workers with heartbeat ages, and a trial's
// answers per evaluation; a file that is not a run database is refused and
// nothing is created; non-loopback addresses need saying so.
import Foundation
import GRDB
import Logging
import Testing
import TestSupport
@testable import Dashboard
@testable import Report
@testable import Store
import Trial

@Suite struct DashboardReaderTests {
    let logger = Logger(label: "test.dashboard") { _ in SwiftLogNoOpLogHandler() }

    @Test func stateHoldsProgressChartsTrialsAndWorkers() throws {
        let folder = try TemporaryDirectory()
        try SyntheticStudy.write(in: folder)
        let reader = try DashboardReader(location: folder.url.path, logger: logger)
        let state = try reader.state()
        #expect(state.run.totalTrials == 10 && state.trials.count == 10)
        #expect(state.run.epochsRecorded == SyntheticStudy.epochRows())
        #expect(state.run.epochsPlanned == 10 * SyntheticStudy.epochs)
        #expect(state.run.trials["done"] == 8 && state.run.trials["running"] == 2)
        #expect(state.charts.map(\.name) == ["accuracy.svg", "loss.svg", "runtime.svg"])
        #expect(state.charts.allSatisfy { $0.svg.hasPrefix("<svg") && $0.svg.contains("class=\"series\"") })
        let running = state.trials.filter { $0.status == "running" }
        #expect(running.count == 2 && running.allSatisfy { $0.condition == "qlora-r8" && $0.accuracy != nil })
        #expect(running.map(\.lastEpoch).sorted() == [14, 20])
        let worker = try #require(state.workers.first)
        #expect(worker.id == "w1" && worker.status == "connected" && (worker.heartbeatAgeSeconds ?? -1) >= 0)
        // It runs one of the two unfinished trials, at the epoch after its last recorded one.
        let trial = try #require(running.first { $0.key == worker.trial })
        #expect(worker.epoch == trial.lastEpoch + 1 && worker.condition == "qlora-r8")
        #expect(state.trials.allSatisfy { $0.decision == nil })
    }

    /// Trials and workers are listed under their chart line: under a grid
    /// axis (one trial of a condition in bf16 here) the line's name, not the
    /// bare condition shared by unlike trials.
    @Test func trialsAndWorkersAreNamedByTheirLine() throws {
        let folder = try TemporaryDirectory()
        let path = try SyntheticStudy.write(in: folder)
        let workerTrial = try #require(try DashboardReader(location: folder.url.path, logger: logger).state().workers.first?.trial)
        try DatabaseQueue(path: path).write { db in
            try db.execute(sql: "UPDATE trials SET config = json_set(config, '$.training.precision', 'bf16') WHERE key = ?",
                           arguments: [workerTrial])
        }
        let state = try DashboardReader(location: folder.url.path, logger: logger).state()
        let qlora = state.trials.filter { $0.condition.hasPrefix("qlora-r8") }
        #expect(Set(qlora.map(\.condition)) == ["qlora-r8, f32", "qlora-r8, bf16"], "\(qlora.map(\.condition))")
        #expect(qlora.first { $0.key == workerTrial }?.condition == "qlora-r8, bf16")
        #expect(state.workers.first?.condition == "qlora-r8, bf16")
        #expect(state.trials.contains { $0.condition == "lora-r4" })
    }

    @Test func answersPerEvaluationAndUnknownTrials() throws {
        let folder = try TemporaryDirectory()
        try SyntheticStudy.write(in: folder)
        let reader = try DashboardReader(location: folder.file("run.db").path, logger: logger)
        let key = SyntheticStudy.trial(SyntheticStudy.conditions[0], seed: 1).key
        let answers = try #require(try reader.answers(of: key))
        #expect(answers.condition == "full")
        #expect(answers.evaluations.map(\.epoch) == Array(1...SyntheticStudy.epochs))
        #expect(answers.evaluations.allSatisfy { $0.answers.count == 2 * SyntheticStudy.facts.count && $0.accuracy != nil })
        #expect(answers.evaluations[0].answers.filter(\.paraphrase).count == SyntheticStudy.facts.count)
        #expect(try reader.answers(of: "no-such-trial") == nil)
    }

    /// Every poll reads the state; the answers it never shows are not read (a run's answer rows are most of
    /// its database). Shown by taking the table away: the state still reads, the answers do not.
    @Test func theStateReadsNoAnswers() throws {
        let folder = try TemporaryDirectory()
        let path = try SyntheticStudy.write(in: folder)
        try DatabaseQueue(path: path).write { try $0.execute(sql: "DROP TABLE question_outputs") }
        let reader = try DashboardReader(location: folder.url.path, logger: logger)
        #expect(try reader.state().trials.count == 10)
        #expect(throws: (any Error).self) { try reader.answers(of: SyntheticStudy.trial(SyntheticStudy.conditions[0], seed: 1).key) }
    }

    @Test func refusesWhatIsNotARunDatabaseAndCreatesNothing() throws {
        let folder = try TemporaryDirectory()
        #expect(throws: ReportError.self) { try DashboardReader(location: folder.file("absent.db").path, logger: logger) }
        #expect(!FileManager.default.fileExists(atPath: folder.file("absent.db").path))
        try Data("not sqlite".utf8).write(to: folder.file("text.db"))
        #expect(throws: ReportError.self) { try DashboardReader(location: folder.file("text.db").path, logger: logger) }
    }

    /// Epoch 0, the base model, is where the accuracy curve and its chart start.
    @Test func accuracyStartsAtTheBaseModel() throws {
        let folder = try TemporaryDirectory()
        let path = folder.file("run.db").path
        let store = try RunStore(path: path, logger: logger)
        try store.announceWorker(WorkerAnnouncement(id: "w1", host: "test", pid: 1, threads: 1, protocolVersion: "FSW1"))
        let trial = SyntheticStudy.trial(SyntheticStudy.conditions[0], seed: 1)
        _ = try store.addSweep(name: "base", spec: Data(#"{"name":"base"}"#.utf8), trials: [trial])
        let claimed = try store.startAttempt(trialKey: trial.key, workerID: "w1")
        var base = SyntheticStudy.report(SyntheticStudy.conditions[0], seed: 1, epoch: 0)
        base.loss = .nan
        base.trainSeconds = 0
        #expect(try store.recordEpoch(claimed.key, attemptID: claimed.attemptID, report: base) == .accepted)
        for epoch in 1...2 {
            _ = try store.recordEpoch(claimed.key, attemptID: claimed.attemptID,
                                      report: SyntheticStudy.report(SyntheticStudy.conditions[0], seed: 1, epoch: epoch))
        }
        let state = try DashboardReader(location: path, logger: logger).state()
        #expect(state.run.epochsRecorded == 2)
        let condition = try #require(ConditionAggregate.all(in: try RunSnapshotReader.read(path: path, logger: logger)).first)
        #expect(condition.accuracy.map(\.epoch) == [0, 1, 2])
        #expect(condition.loss.map(\.epoch) == [1, 2])
        let accuracy = try #require(ReportFigures.figures([condition]).first)
        #expect(accuracy.chart.series.first?.points.first?.x == 0)
        #expect(try DashboardReader(location: path, logger: logger).answers(of: trial.key)?.evaluations.map(\.epoch) == [0, 1, 2])
    }

    /// A pending trial refused for settings older builds do not read says why it waits, as `factsweep
    /// status` does: its refusers in order and the latest reason. A trial whose refusal counted (an error
    /// of its own) or that runs again waits for nothing; the others say nothing either.
    @Test func aTrialRefusedForUnreadSettingsSaysWhyItWaits() throws {
        let folder = try TemporaryDirectory()
        let path = try SyntheticStudy.write(in: folder)
        let (refused, counted) = try Self.refuseRunningTrials(at: path)
        let state = try DashboardReader(location: folder.url.path, logger: logger).state()
        let waiting = state.trials.filter { $0.waiting != nil }
        #expect(waiting.map(\.key) == [refused], "\(state.trials.map { ($0.key, $0.status, $0.waiting) })")
        let line = try #require(waiting.first?.waiting)
        #expect(line == "for a worker whose build reads its settings; refused by w1, old2: old2 does not read training.future",
                "\(line)")
        #expect(state.trials.first { $0.key == counted }?.status == "pending")
        // Once a worker runs it again, it waits no more.
        let store = try RunStore(path: path, logger: logger)
        _ = try store.startAttempt(trialKey: refused, workerID: "w1")
        #expect(try DashboardReader(location: folder.url.path, logger: logger).state().trials.allSatisfy { $0.waiting == nil })
    }

    /// The dashboard reads a run database as it is, never migrating it: one from before
    /// `v10-attempt-refused` (and before the stopping rules of v9) has no refusals to show, and is shown.
    @Test func aDatabaseFromBeforeRefusalsWereRecordedIsShown() throws {
        let folder = try TemporaryDirectory()
        for (name, last) in [("v8.db", "v8-attempt-phase"), ("v9.db", "v9-stopping-decisions")] {
            let path = folder.file(name).path
            let queue = try DatabaseQueue(path: path)
            try RunSchema.migrator.migrate(queue, upTo: last)
            try queue.write { db in
                try db.execute(sql: """
                    INSERT INTO sweeps (name, spec, created_at) VALUES ('old', '{}', '2026-12-01 00:00:00.000');
                    INSERT INTO trials (key, sweep_id, condition, config, model, method, lr, epochs, seed, batch_size, retry_limit, status,
                                        created_at, updated_at)
                    VALUES ('t1', 1, 'lora', '{}', 'm', 'lora', 0.001, 3, 1, 1, 2, 'pending', '2026-12-01 00:00:00.000', '2026-12-01 00:00:00.000');
                    """)
            }
            try queue.close()
            let state = try DashboardReader(location: path, logger: logger).state()
            #expect(state.run.totalTrials == 1 && state.trials.map(\.waiting) == [nil], "\(name)")
        }
    }

    /// Turns the synthetic study's two running trials pending: the first refused by its worker `w1` and
    /// then by a second worker `old2` for settings their builds do not read (free refusals), the second
    /// handed back after an error of its own (counted). Returns their keys.
    static func refuseRunningTrials(at path: String) throws -> (refused: String, counted: String) {
        let logger = Logger(label: "test.dashboard") { _ in SwiftLogNoOpLogHandler() }
        let store = try RunStore(path: path, logger: logger)
        try store.announceWorker(WorkerAnnouncement(id: "old2", host: "test", pid: 2, threads: 2, protocolVersion: "FSW1"))
        let running = try DatabaseQueue(path: path).read { db in
            try Row.fetchAll(db, sql: "SELECT key, current_attempt_id FROM trials WHERE status = 'running' ORDER BY rowid")
                .map { ($0["key"] as String, $0["current_attempt_id"] as AttemptID) }
        }
        guard running.count == 2 else { throw DashboardTestFailure("the synthetic study runs \(running.count) trials, not 2") }
        let (refused, first) = running[0], (counted, second) = running[1]
        #expect(try store.releaseTrial(refused, attemptID: first, reason: "w1 does not read training.future",
                                       setback: .unreadSettings) == .accepted)
        let again = try store.startAttempt(trialKey: refused, workerID: "old2")
        #expect(try store.releaseTrial(refused, attemptID: again.attemptID, reason: "old2 does not read training.future",
                                       setback: .unreadSettings) == .accepted)
        #expect(try store.releaseTrial(counted, attemptID: second, reason: "out of memory", setback: .trialError) == .accepted)
        return (refused, counted)
    }

    /// A state lists at most `limit` trials, in the order the sweep added them, and says how many match.
    @Test func aStateListsAtMostTheLimitAndCountsTheRest() throws {
        let folder = try TemporaryDirectory()
        try SyntheticStudy.write(in: folder)
        let reader = try DashboardReader(location: folder.url.path, logger: logger)
        let all = try reader.state()
        #expect(all.trials.count == 10 && all.trialsMatching == 10 && all.filter.isEmpty)
        let cut = try reader.state(limit: 3)
        #expect(cut.trials.map(\.key) == all.trials.prefix(3).map(\.key) && cut.trialsMatching == 10)
        #expect(cut.run.totalTrials == 10, "the counts are the run's, not the list's")
        #expect(DashboardReader.trialRowLimit == 500)
    }

    /// Every word of the filter must be in the trial's key, line, method or status, ignoring case.
    @Test func theFilterMatchesEveryWordInKeyLineMethodOrStatus() throws {
        let folder = try TemporaryDirectory()
        try SyntheticStudy.write(in: folder)
        let reader = try DashboardReader(location: folder.url.path, logger: logger)
        let all = try reader.state().trials
        let running = try reader.state(filter: "running")
        #expect(running.trials.count == 2 && running.trials.allSatisfy { $0.status == "running" } && running.trialsMatching == 2)
        #expect(running.filter == "running")
        #expect(try reader.state(filter: "  QLoRA   RUNNING ").trials.map(\.key) == running.trials.map(\.key))
        let qloraDone = try reader.state(filter: "qlora done").trials
        #expect(qloraDone.map(\.key) == all.filter { $0.condition.hasPrefix("qlora") && $0.status == "done" }.map(\.key))
        #expect(try reader.state(filter: "lora-r4-s1").trials.map(\.key) == ["lora-r4-s1"])
        #expect(try reader.state(filter: "ia3").trials.allSatisfy { $0.method == "ia3" })
        let none = try reader.state(filter: "running lora-r4")
        #expect(none.trials.isEmpty && none.trialsMatching == 0)
        let cut = try reader.state(filter: "done", limit: 2)
        #expect(cut.trials.count == 2 && cut.trialsMatching == 8)
    }

    /// The run's rows are read again only once another connection has committed; until then a poll takes
    /// them from the last read, and after it shows the change.
    @Test func rowsAreReadAgainOnlyAfterAnotherConnectionCommits() throws {
        let folder = try TemporaryDirectory()
        let path = try SyntheticStudy.write(in: folder)
        let reader = try DashboardReader(location: folder.url.path, logger: logger)
        let first = try reader.state()
        _ = try reader.state(filter: "running")
        let again = try reader.state()
        #expect(reader.rowReads == 1)
        #expect(again.trials == first.trials && again.charts == first.charts)
        let key = try #require(first.trials.first { $0.status == "running" }?.key)
        try DatabaseQueue(path: path).write { db in
            try db.execute(sql: "UPDATE trials SET status = 'failed' WHERE key = ?", arguments: [key])
        }
        let changed = try reader.state()
        #expect(reader.rowReads == 2)
        #expect(changed.trials.first { $0.key == key }?.status == "failed")
        #expect(changed.run.trials["failed"] == 1 && changed.run.trials["running"] == 1)
        _ = try reader.state()
        #expect(reader.rowReads == 2)
    }

    @Test func nonLoopbackNeedsSayingSo() throws {
        #expect(["127.0.0.1", "127.0.0.2", "localhost", "::1", "[::1]", "127.255.255.254"].allSatisfy(DashboardServer.isLoopback))
        #expect(!["0.0.0.0", "192.168.1.5", "::", "example.org", "127.example.org", "127.0.0.1.example.org", "128.0.0.1", ""]
            .contains(where: DashboardServer.isLoopback))
        #expect(DashboardServer.hostname(ofAuthority: "[::1]:8080") == "[::1]")
        #expect(DashboardServer.hostname(ofAuthority: "localhost:8080") == "localhost")
        #expect(DashboardServer.hostname(ofAuthority: "example.org") == "example.org")
        let folder = try TemporaryDirectory()
        try SyntheticStudy.write(in: folder)
        let reader = try DashboardReader(location: folder.url.path, logger: logger)
        #expect(throws: DashboardServer.StartError.self) { try DashboardServer.start(reader, host: "0.0.0.0", port: 0, logger: logger) }
    }
}
