// Reports of runs that have nothing to show yet, of databases that predate
// stored summaries, and refusals of files that are not run databases.
import Foundation
import GRDB
import Logging
import Testing
import TestSupport
import Trial
@testable import Report
@testable import Store

@Suite struct ReportEdgeCaseTests {
    let logger = Logger(label: "test.report") { _ in SwiftLogNoOpLogHandler() }

    /// A learning-rate axis: each rate of a condition is its own line (seeds
    /// combined), named after the rate; conditions without an axis keep their name.
    @Test func gridAxesOfAConditionAreSeparateLines() throws {
        var snapshot = SyntheticStudy.snapshot(SyntheticStudy.conditions(recording: 4), plannedEpochs: 4)
        let fullTrials = snapshot.trials.indices.filter { snapshot.trials[$0].condition == "full" }
        #expect(fullTrials.count == 2)
        snapshot.trials[fullTrials[1]].learningRate = 1e-5
        let aggregates = ConditionAggregate.all(in: snapshot)
        #expect(aggregates.map(\.condition).prefix(3) == ["full, lr 0.0002", "full, lr 0.00001", "lora-r4"])
        #expect(aggregates.prefix(2).allSatisfy { $0.trials.count == 1 })
        #expect(aggregates[2].trials.count == 2)
        #expect(aggregates.count == SyntheticStudy.conditions.count + 1)
    }

    /// Trials of one condition that a grid axis makes differ in anything but
    /// the seed — precision and batch size here, read from each trial's stored
    /// configuration — are separate lines named after what differs; only seeds
    /// are averaged. Before, the report told lines apart by rank, alpha, rate
    /// and epochs alone and averaged f32 with bf16 trials as if they were seeds.
    @Test func everySettingButTheSeedSeparatesLines() throws {
        let folder = try TemporaryDirectory()
        let store = try RunStore(path: folder.file("run.db").path, logger: logger)
        try store.announceWorker(WorkerAnnouncement(id: "w1", host: "test", pid: 1, threads: 2, protocolVersion: "FSW1"))
        func trial(_ precision: Precision?, batch: Int, seed: UInt64, threshold: Float = 0.9, checkpointEvery: Int = 10) -> SweepTrial {
            var training = TrainingSettings()
            training.method = MethodSettings(kind: .lora, rank: 8, alpha: 32)
            training.learningRate = 1e-3
            training.epochs = 2
            training.batchSize = batch
            training.precision = precision
            training.seed = seed
            let config = TrialConfig(model: "models/smollm2", data: "data/facts.jsonl", training: training, threshold: threshold,
                                     checkpointEvery: checkpointEvery)
            return SweepTrial(key: "\(precision?.rawValue ?? "f32")-b\(batch)-s\(seed)-t\(threshold)-c\(checkpointEvery)",
                              condition: "lora-r8", config: config)
        }
        var trials: [SweepTrial] = []
        for precision in [nil, Precision.bf16] {
            for batch in [1, 8] { trials += [0, 1].map { trial(precision, batch: batch, seed: $0) } }
        }
        let other = [0, 1].map { trial(nil, batch: 1, seed: $0, threshold: 0.8) }
        // How often a trial checkpoints changes nothing it computes: these are seeds of the first line.
        let checkpointed = [2, 3].map { trial(nil, batch: 1, seed: $0, checkpointEvery: 5) }
        let ia3 = [UInt64(0), 1].map { seed -> SweepTrial in
            var one = trial(nil, batch: 1, seed: seed)
            one.condition = "ia3"; one.key = "ia3-s\(seed)"
            return one
        }
        let all = trials + other + checkpointed + ia3
        _ = try store.addSweep(name: "axes", spec: Data("{}".utf8), trials: all)
        // Each trial records a loss that says which precision and batch size it trained with.
        for (index, added) in all.enumerated() {
            let claimed = try store.startAttempt(trialKey: added.key, workerID: "w1")
            let loss = Float(added.config.training.productPrecision == Precision.bf16 ? 2 : 1) + Float(added.config.training.batchSize) / 100
            _ = try store.recordEpoch(claimed.key, attemptID: claimed.attemptID,
                                      report: EpochReport(epoch: 1, loss: loss, epochSeconds: 1, trainSeconds: Double(index), tokens: 10))
        }
        let report = try RunReport.read(folder.file("run.db").path, logger: logger)
        let lines = Dictionary(uniqueKeysWithValues: report.conditions.map { ($0.condition, $0) })
        #expect(report.conditions.map(\.condition) == [
            "lora-r8, f32, batch 1, threshold 0.9", "lora-r8, f32, batch 8, threshold 0.9",
            "lora-r8, bf16, batch 1, threshold 0.9", "lora-r8, bf16, batch 8, threshold 0.9",
            "lora-r8, f32, batch 1, threshold 0.8", "ia3",
        ])
        for (name, loss, seeds) in [("lora-r8, f32, batch 1, threshold 0.9", 1.01, Set<Int64>([0, 1, 2, 3])),
                                    ("lora-r8, bf16, batch 8, threshold 0.9", 2.08, [0, 1])] {
            let line = try #require(lines[name])
            #expect(Set(line.trials.map(\.seed)) == seeds)
            let point = try #require(line.loss.first)
            #expect(abs(point.spread.mean - loss) < 1e-6 && point.spread.count == seeds.count)
        }
        #expect(report.conditions.last?.trials.count == 2)
        // The claims read the arm's first line, and the report says which.
        #expect(StudyClaims.linesReadAmongSeveral(report.conditions) == ["lora-r8, f32, batch 1, threshold 0.9"])
        let files = try report.write(to: folder.file("out"), logger: logger)
        let markdown = try String(contentsOf: files.markdown, encoding: .utf8)
        #expect(markdown.contains("Where an arm has several lines, the claims read its first: lora-r8, f32, batch 1, threshold 0.9."))
        // The CSV says each row's batch size, precision, AdamW moments and where the update ran.
        let csv = try String(contentsOf: files.csv, encoding: .utf8)
        let rows = csv.split(separator: "\r\n").dropFirst()
        #expect(rows.count == 14)
        #expect(rows.filter { $0.hasSuffix(",8,bf16,f32,false,\"lora-r8, bf16, batch 8, threshold 0.9\"") }.count == 2)
        #expect(rows.filter { $0.hasSuffix(",1,f32,f32,false,\"lora-r8, f32, batch 1, threshold 0.9\"") }.count == 4)
        #expect(rows.filter { $0.hasSuffix(",1,f32,f32,false,ia3") }.count == 2)
    }

    /// Two lines whose labels shorten to the same text are numbered, and a
    /// condition with a trial whose configuration could not be read is told
    /// apart by the columns alone, so that it is not split by keys only the
    /// readable configurations have.
    @Test func linesKeepDistinctNamesAndUnreadableConfigurationsCompareByColumns() {
        func trial(_ key: String, _ condition: String, settings: TrialSettings?) -> ReportTrial {
            ReportTrial(key: key, condition: condition, method: "lora", rank: 8, alpha: 32, learningRate: 1e-3, seed: 0,
                        plannedEpochs: 2, status: "done", lastEpoch: 2, settings: settings)
        }
        let columns = ["training.method.rank": "8", "training.method.alpha": "32", "training.learningRate": "0.001",
                       "training.epochs": "2", "training.batchSize": "1"]
        var elsewhere = columns
        elsewhere["model"] = "/lab/b/model"
        var here = columns
        here["model"] = "/lab/a/model"
        let snapshot = RunSnapshot(path: "test", sweepNames: ["s"], trials: [
            trial("a", "x", settings: TrialSettings(here)), trial("b", "x", settings: TrialSettings(elsewhere)),
            trial("c", "y", settings: nil), trial("d", "y", settings: TrialSettings(here)),
        ], epochs: [], lastAnswers: [], storesSummaries: true)
        let lines = ConditionAggregate.all(in: snapshot)
        #expect(lines.map(\.condition) == ["x, model model", "x, model model (2)", "y"])
        #expect(lines.map { $0.trials.map(\.key) } == [["a"], ["b"], ["c", "d"]])
        #expect(ConditionAggregate.lineNames(lines) == ["a": "x, model model", "b": "x, model model (2)", "c": "y", "d": "y"])
    }

    /// The CSV says how each trial's AdamW stored its moments and where its
    /// update ran (a grid over either makes lines the CSV must tell apart);
    /// a trial whose configuration could not be read leaves the cells empty.
    @Test func theCSVSaysEachTrialsMomentsAndUpdate() {
        func trial(_ key: String, _ values: [String: String]?) -> ReportTrial {
            ReportTrial(key: key, condition: "c", method: "full", rank: nil, alpha: nil, learningRate: 1e-5, seed: 0,
                        plannedEpochs: 1, status: "done", lastEpoch: 1, settings: values.map(TrialSettings.init))
        }
        let snapshot = RunSnapshot(path: "test", sweepNames: ["s"], trials: [
            trial("a", ["training.method.kind": "full"]),
            trial("b", ["training.method.kind": "full", "training.optimizer.moments": "bf16", "training.optimizer.updateInBackward": "true"]),
            trial("u", nil),
        ], epochs: ["a", "b", "u"].map {
            ReportEpoch(trialKey: $0, epoch: 1, loss: 1, trainSeconds: 1, epochSeconds: 1, accuracy: nil, accuracyAtThreshold: nil,
                        keyMatch: nil, perplexity: nil)
        }, lastAnswers: [], storesSummaries: true)
        let rows = MetricsCSV.csv(snapshot, lines: [:]).split(separator: "\r\n").map { $0.split(separator: ",", omittingEmptySubsequences: false) }
        let moments = MetricsCSV.columns.firstIndex(of: "adam_moments")!, update = MetricsCSV.columns.firstIndex(of: "update_in_backward")!
        #expect(rows.dropFirst().map { "\($0[moments]) \($0[update])" } == ["f32 false", "bf16 true", " "], "\(rows)")
    }

    /// A cell with a comma, a quote or a line break is quoted, its quotes doubled, also where the quote or
    /// the break begins a longer `Character` (a combining mark after it, or "\r\n"), which went out bare;
    /// a trial's cells are the same on each of its rows, and a row whose trial is unknown keeps its key.
    @Test func csvQuotesByBytesNotCharacters() throws {
        func trial(_ key: String, condition: String) -> ReportTrial {
            ReportTrial(key: key, condition: condition, method: "lora", rank: 8, alpha: 32, learningRate: 1e-3, seed: 7,
                        plannedEpochs: 2, status: "done", lastEpoch: 2, settings: TrialSettings(["training.batchSize": "1"]))
        }
        let snapshot = RunSnapshot(path: "test", sweepNames: ["s"], trials: [
            trial("q", condition: "a\"\u{301}b"), trial("n", condition: "x\r\ny"), trial("c", condition: "one, two"),
        ], epochs: [("q", 1), ("q", 2), ("n", 1), ("c", 1), ("gone", 1)].map {
            ReportEpoch(trialKey: $0.0, epoch: $0.1, loss: 0.5, trainSeconds: 1, epochSeconds: 1.5, accuracy: 0.25,
                        accuracyAtThreshold: nil, keyMatch: nil, perplexity: nil)
        }, lastAnswers: [], storesSummaries: true)
        let csv = Array(MetricsCSV.csv(snapshot, lines: ["q": "line \"q\"", "gone": "old, line"]).utf8)
        func row(_ text: String) -> Bool { csv.firstRange(of: Array((text + "\r\n").utf8)) != nil }
        #expect(row("q,\"a\"\"\u{301}b\",lora,8,32.0,0.001,7,1,0.5,1.0,1.5,0.25,,,,1,f32,f32,false,\"line \"\"q\"\"\""))
        #expect(row("q,\"a\"\"\u{301}b\",lora,8,32.0,0.001,7,2,0.5,1.0,1.5,0.25,,,,1,f32,f32,false,\"line \"\"q\"\"\""))
        #expect(row("n,\"x\r\ny\",lora,8,32.0,0.001,7,1,0.5,1.0,1.5,0.25,,,,1,f32,f32,false,"))
        #expect(row("c,\"one, two\",lora,8,32.0,0.001,7,1,0.5,1.0,1.5,0.25,,,,1,f32,f32,false,"))
        #expect(row("gone,,,,,,,1,0.5,1.0,1.5,0.25,,,,,,,,\"old, line\""))
    }

    /// The file is written a megabyte at a time: over several pieces it holds exactly `csv()`'s text, and a
    /// path it cannot take is an error naming it, with nothing left beside it.
    @Test func csvFileIsWrittenInPiecesAsTheWholeText() throws {
        let trials = (0..<200).map {
            ReportTrial(key: "t\($0)", condition: $0 % 2 == 0 ? "even, quoted" : "odd", method: "lora", rank: 8, alpha: 32,
                        learningRate: 1e-3, seed: Int64($0), plannedEpochs: 100, status: "done", lastEpoch: 100, settings: nil)
        }
        let epochs = trials.flatMap { trial in
            (1...100).map {
                ReportEpoch(trialKey: trial.key, epoch: $0, loss: 1 / Double($0), trainSeconds: Double($0) * 1.25, epochSeconds: 1.25,
                            accuracy: Double($0) / 100, accuracyAtThreshold: nil, keyMatch: nil, perplexity: 9.5)
            }
        }
        let snapshot = RunSnapshot(path: "test", sweepNames: ["s"], trials: trials, epochs: epochs, lastAnswers: [], storesSummaries: true)
        let folder = try TemporaryDirectory()
        let file = folder.file("metrics.csv")
        try MetricsCSV.write(snapshot, lines: ["t1": "line one"], to: file)
        let written = try Data(contentsOf: file)
        #expect(written.count > 1 << 20, "\(written.count) bytes: more than one piece")
        #expect(written == Data(MetricsCSV.csv(snapshot, lines: ["t1": "line one"]).utf8))
        // A directory where the file should go: an error, and no partial file left.
        let blocked = folder.file("blocked.csv")
        try FileManager.default.createDirectory(at: blocked.appendingPathComponent("inside"), withIntermediateDirectories: true)
        #expect(throws: (any Error).self) { try MetricsCSV.write(snapshot, lines: [:], to: blocked) }
        #expect(try FileManager.default.contentsOfDirectory(atPath: folder.url.path).sorted() == ["blocked.csv", "metrics.csv"])
        // A partial file a killed report left is removed once it is stale; one being written is not.
        let stale = folder.file(".metrics.csv.killed.partial"), live = folder.file(".metrics.csv.writing.partial")
        try Data("left".utf8).write(to: stale)
        try Data("being written".utf8).write(to: live)
        try FileManager.default.setAttributes([.modificationDate: Date().addingTimeInterval(-MetricsCSV.stalePartialAge - 60)],
                                              ofItemAtPath: stale.path)
        try MetricsCSV.write(snapshot, lines: [:], to: file)
        #expect(!FileManager.default.fileExists(atPath: stale.path) && FileManager.default.fileExists(atPath: live.path))
        // The report names the file it could not write.
        let study = try TemporaryDirectory()
        try SyntheticStudy.write(into: study.url)
        let report = try RunReport.read(study.url.path, logger: Logger(label: "test"))
        let out = study.file("report")
        try FileManager.default.createDirectory(at: out.appendingPathComponent("metrics.csv/inside"), withIntermediateDirectories: true)
        #expect {
            try report.write(to: out, logger: Logger(label: "test"))
        } throws: { error in
            guard case let ReportError.cannotWrite(path, _) = error else { return false }
            return path == out.appendingPathComponent("metrics.csv").path
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: out.path).filter { $0.hasSuffix(".partial") }.isEmpty)
    }

    /// A Markdown table cell's pipes are escaped and its line breaks ("\r\n", "\n", a lone "\r") made one
    /// space each, also where one begins a longer `Character`.
    @Test func markdownCellsKeepTheirRow() {
        let row = MarkdownReportWriter.row(["a\rb", "x|\u{301}y", "p\n\u{301}q", "c\r\nd", "plain"])
        #expect(Array(row.unicodeScalars) == Array("| a b | x\\|\u{301}y | p \u{301}q | c d | plain |".unicodeScalars), "\(row.debugDescription)")
    }

    /// The model table has a row per storage the trials trained on: LoRA and
    /// IA³ in bf16 hold the projections in bf16, full fine-tuning in bf16 keeps
    /// Float32 master weights, QLoRA NF4 in either precision. A bf16 trial that
    /// has not finished (no description yet) still goes to its own row.
    @Test func theModelTableSaysWhichTrialsHeldABFloat16Base() throws {
        func trial(_ condition: String, _ method: String, bf16: Bool, weights: String?) -> ReportTrial {
            var settings = TrialSettings(["training.method.kind": method])
            if bf16 { settings.values["training.precision"] = "bf16" }
            let summary = weights.map {
                TrialSummary(outcome: .done, epochs: 1, finalLoss: 1, trainableParameters: 1, baseWeightBytes: nil,
                             peakResidentBytes: 1,
                             secondsPerEpoch: 1, evaluationSeconds: 0,
                             model: ModelDescription(name: "m", file: "m.gguf", weights: $0, parameters: 7))
            }
            return ReportTrial(key: "\(condition)-\(bf16)", condition: condition, method: method, rank: nil, alpha: nil,
                               learningRate: 1e-3, seed: 0, plannedEpochs: 1, status: weights == nil ? "running" : "done",
                               lastEpoch: 1, summary: summary, model: "models/m", settings: settings)
        }
        let plain = "GGUF Q4_1, dequantised to Float32"
        let trials = [
            trial("full", "full", bf16: false, weights: plain), trial("full", "full", bf16: true, weights: plain),
            trial("lora-r8", "lora", bf16: false, weights: plain),
            trial("lora-r8", "lora", bf16: true, weights: plain + ", projections rounded to bf16 (bf16 precision)"),
            trial("ia3", "ia3", bf16: true, weights: nil),
            trial("qlora-r8", "qlora", bf16: true, weights: plain + ", projections quantised again to NF4 (QLoRA)"),
        ]
        let tables = ReportModels.blocks(trials).compactMap { block -> ReportTable? in
            if case let .table(table) = block { return table }
            return nil
        }
        let rows = try #require(tables.first).rows
        #expect(rows.map { [$0[0], $0[3]] } == [
            ["full, lora-r8", plain],
            ["lora-r8, ia3", plain + ", projections rounded to bf16 (bf16 precision)"],
            ["qlora-r8", plain + ", projections quantised again to NF4 (QLoRA)"],
        ])
    }

    @Test func anEmptyRunGivesAReportThatSaysSo() throws {
        let folder = try TemporaryDirectory()
        _ = try RunStore(path: folder.file("run.db").path, logger: logger)
        let report = try RunReport.read(folder.url.path, logger: logger)
        let files = try report.write(to: folder.file("report"), logger: logger)
        #expect(files.figures.isEmpty)
        let html = try String(contentsOf: files.html, encoding: .utf8)
        #expect(html.contains("This run has no trials yet"))
        #expect(try String(contentsOf: files.csv, encoding: .utf8) == MetricsCSV.columns.joined(separator: ",") + "\r\n")
        #expect(report.claims.allSatisfy { $0.verdict == .notMeasured })
    }

    @Test func trialsWithoutEpochsGiveNoFiguresYet() throws {
        let folder = try TemporaryDirectory()
        let store = try RunStore(path: folder.file("run.db").path, logger: logger)
        _ = try store.addSweep(name: "study", spec: Data("{}".utf8),
                               trials: SyntheticStudy.conditions.map { SyntheticStudy.trial($0, seed: 1) })
        let report = try RunReport.read(folder.file("run.db").path, logger: logger)
        let markdown = try String(contentsOf: try report.write(to: folder.file("out"), logger: logger).markdown, encoding: .utf8)
        #expect(markdown.contains("No epoch has been recorded yet"))
        #expect(!markdown.contains(".svg"))
    }

    @Test func aDatabaseWithoutSummariesShowsWhatItHas() throws {
        let folder = try TemporaryDirectory()
        let path = try SyntheticStudy.write(in: folder, conditions: Array(SyntheticStudy.conditions.prefix(2)))
        // Back to the first schema, as a database written before summaries were stored.
        try DatabaseQueue(path: path).write { db in
            try db.execute(sql: "ALTER TABLE trials DROP COLUMN summary")
            try db.execute(sql: "DELETE FROM grdb_migrations WHERE identifier = 'v2-trial-summary'")
        }
        let report = try RunReport.read(path, logger: logger)
        #expect(!report.snapshot.storesSummaries)
        let markdown = try String(contentsOf: try report.write(to: folder.file("out"), logger: logger).markdown, encoding: .utf8)
        #expect(markdown.contains("| full | not stored | 18.30 |"))
        #expect(markdown.contains("Not stored: this run database predates trial summaries"))
        #expect(markdown.contains("| full, lora-r4 | smollm2 | — | — | — |"), "the model path from the configuration only")
    }

    @Test func refusesWhatIsNotARunDatabaseNamingThePath() throws {
        let folder = try TemporaryDirectory()
        let missing = folder.file("nowhere/run.db").path
        #expect(throws: ReportError.missingDatabase(path: missing)) { try RunReport.read(missing, logger: logger) }
        // A run directory without run.db is reported as that file missing.
        #expect(throws: ReportError.missingDatabase(path: folder.file("run.db").path)) {
            try RunReport.read(folder.url.path, logger: logger)
        }

        let text = folder.file("notes.txt")
        try Data("not a database".utf8).write(to: text)
        let empty = folder.file("empty.db")
        try Data().write(to: empty)
        let other = folder.file("other.db")
        try DatabaseQueue(path: other.path).write { try $0.execute(sql: "CREATE TABLE t (x)") }
        for (url, reason) in [(text, "not an SQLite file"), (empty, "an empty file"), (other, "application_id 0")] {
            do {
                _ = try RunReport.read(url.path, logger: logger)
                Issue.record("read \(url.lastPathComponent)")
            } catch let error as ReportError {
                guard case let .notARunDatabase(path, why) = error else { Issue.record("\(error)"); continue }
                #expect(path == url.path && why.contains(reason))
                #expect(error.description.hasPrefix(url.path + " is not a FactSweep run database"))
            }
        }
    }

    @Test func readsWhileTheCoordinatorHoldsTheDatabaseOpen() throws {
        let folder = try TemporaryDirectory()
        try SyntheticStudy.write(in: folder, conditions: Array(SyntheticStudy.conditions.prefix(1)))
        let store = try RunStore(path: folder.file("run.db").path, logger: logger)
        let before = try store.status()
        let report = try RunReport.read(folder.url.path, logger: logger)
        #expect(report.snapshot.trials.count == 2 && report.snapshot.epochs.count == 60)
        var after = try store.status()
        after.window = before.window  // wall time moved on between the two reads
        #expect(after == before)
    }
}
