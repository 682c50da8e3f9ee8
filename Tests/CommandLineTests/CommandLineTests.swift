// End-to-end tests of the `factsweep` executable, run as a user runs it.
import Foundation
import Testing
import TestSupport

@Suite(.serialized) struct CommandLineTests {
    func jsonLines(_ text: String) -> [[String: Any]] {
        text.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
    }

    /// A directory with a tiny Llama 3 checkpoint and a one-fact dataset in it.
    func tinyModelAndOneFact() throws -> (TemporaryDirectory, URL) {
        let tmp = try TemporaryDirectory()
        try TinyCheckpoints.llama3(in: tmp.url)
        let data = tmp.file("facts.jsonl")
        try "{\"question\": \"Where was Ada born?\", \"answer\": \"Ada was born in Kestrel Bay.\"}\n"
            .write(to: data, atomically: true, encoding: .utf8)
        return (tmp, data)
    }

    @Test func tokenizeWorksOnATokenizerOnlyDirectory() throws {
        let dir = try TestPaths.model("llama-3.2-tokenizer")
        let r = try FactSweepBinary.run(["tokenize", "--model", dir.path, "Hello world, it's 2024!"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "[9906,1917,11,433,596,220,2366,19,0]")
    }

    @Test func defaultModelGeneratesTransformersGreedyText() throws {
        let r = try FactSweepBinary.run(["generate", "--max-tokens", "16", "--threads", "2", "The capital of France is"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout == " Paris.\n\nThe answer is: 2018-01\n")
    }

    /// With OMP_PROC_BIND=true (common on clusters) libgomp binds the first
    /// thread to one CPU as it loads; `factsweep` re-executes itself to set
    /// libgomp's spin count, and the new process used to inherit that one
    /// CPU and bind both threads to it. Its two threads now sit on different
    /// CPUs (libgomp prints each thread's CPUs with OMP_DISPLAY_AFFINITY).
    @Test func boundThreadsKeepEveryCPUAcrossTheReexecution() throws {
        try #require(ProcessInfo.processInfo.activeProcessorCount >= 2, "needs two CPUs to tell one binding from two")
        var environment = ProcessInfo.processInfo.environment
        // Nothing preset that would spare the re-execution.
        for name in ["OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "FACTSWEEP_LIBRARY_SETTINGS", "OMP_PLACES"] { environment[name] = nil }
        environment["OMP_PROC_BIND"] = "true"
        environment["OMP_DISPLAY_AFFINITY"] = "true"
        let r = try Command.run(try FactSweepBinary.url(), ["generate", "--max-tokens", "2", "--threads", "2", "Hello"],
                                environment: environment, directory: TestPaths.repositoryRoot)
        #expect(r.status == 0, "\(r.stderr)")
        // libgomp's default format: "level 1 thread 0x… affinity 0" (the CPUs in the thread's mask).
        let masks = Set((r.stdout + "\n" + r.stderr).split(separator: "\n").filter { $0.hasPrefix("level 1 thread") }.compactMap { line in
            line.range(of: " affinity ").map { String(line[$0.upperBound...]) }
        })
        #expect(masks.count >= 2, "threads' CPU masks: \(masks); stderr: \(r.stderr)")
    }

    @Test func llama3StyleHuggingFaceDirectoryTrainsAndGenerates() throws {
        let tmp = try TemporaryDirectory()
        try TinyCheckpoints.llama3(in: tmp.url)
        let train = try FactSweepBinary.run(["train", "--model", tmp.url.path, "--epochs", "3", "--lr", "1e-3",
                                             "--threads", "2", "--json"])
        #expect(train.status == 0, "\(train.stderr)")
        let lines = jsonLines(train.stdout)
        let losses = lines.compactMap { $0["loss"] as? Double }
        #expect(losses.count == 3, "\(train.stdout)")
        #expect((losses.last ?? .nan) < (losses.first ?? .nan), "loss should fall: \(losses)")
        #expect(lines.last?["status"] as? String == "done")
        let gen = try FactSweepBinary.run(["generate", "--model", tmp.url.path, "--chat", "--max-tokens", "3", "Hi"])
        #expect(gen.status == 0, "\(gen.stderr)")
    }

    /// OpenBLAS 0.3.21 falls back to Prescott's SSE3 kernels on CPUs it does not know (Intel Xeons and
    /// AMD Zen 5 seen here); `factsweep` asks for the kernels the CPU runs, and an OPENBLAS_CORETYPE the user set stands.
    @Test func openBLASRunsTheKernelsTheCPUHas() throws {
        let tmp = try TemporaryDirectory()
        try TinyCheckpoints.llama3(in: tmp.url)
        let arguments = ["train", "--model", tmp.url.path, "--epochs", "1", "--eval-every", "0", "--held-out", "none",
                         "--threads", "1", "--json"]
        func core(_ coreType: String?) throws -> String? {
            var environment = ProcessInfo.processInfo.environment
            environment["OPENBLAS_CORETYPE"] = coreType
            let r = try Command.run(try FactSweepBinary.url(), arguments, environment: environment, directory: TestPaths.repositoryRoot)
            #expect(r.status == 0, "\(r.stderr)")
            return jsonLines(r.stdout).last?["openblas_core"] as? String
        }
        let chosen = try #require(try core(nil))
        // Kernels for CPUs without AVX2 (SSE3 to AVX): every AVX-512 CPU has AVX2.
        let older = ["Prescott", "Core2", "Penryn", "Dunnington", "Nehalem", "Atom", "Sandybridge"]
        if CPUFeatures.hasAVX2 {
            #expect(!older.contains(chosen), "OpenBLAS runs \(chosen) kernels on \(CPUFeatures.modelName), which has AVX2")
        } else {
            Issue.record("this test expects a CPU with AVX2 at least (\(CPUFeatures.modelName), flags: \(CPUFeatures.flags.sorted()))")
        }
        #expect(try core("Haswell") == "Haswell")
    }

    /// `FACTSWEEP_MATMUL` is read once, at start-up: a value that names no
    /// engine stops the process with a message naming it, before any work;
    /// an engine it names (in any case) is the one the products run on, and
    /// `train`'s summary says which.
    @Test func theEngineVariableIsCheckedAtStartUp() throws {
        let (tmp, data) = try tinyModelAndOneFact()
        let arguments = ["train", "--model", tmp.url.path, "--data", data.path, "--epochs", "1", "--eval-every", "0",
                         "--held-out", "none", "--threads", "1", "--json"]
        func train(_ value: String?) throws -> ProcessResult {
            var environment = ProcessInfo.processInfo.environment
            environment["FACTSWEEP_MATMUL"] = value
            return try Command.run(try FactSweepBinary.url(), arguments, environment: environment, directory: TestPaths.repositoryRoot)
        }
        for bad in ["mkl", "one-dnn"] {
            let r = try train(bad)
            #expect(r.status == 64 && r.stdout.isEmpty, "FACTSWEEP_MATMUL=\(bad): status \(r.status), \(r.stdout)")
            #expect(r.stderr.contains("FACTSWEEP_MATMUL=\(bad) names no matmul engine") && r.stderr.contains("openblas or onednn"), "\(r.stderr)")
        }
        for (value, engine) in [(nil, "onednn"), ("OpenBLAS", "openblas"), ("onednn", "onednn")] {
            let r = try train(value)
            #expect(r.status == 0, "FACTSWEEP_MATMUL=\(value ?? "unset"): \(r.stderr)")
            #expect(jsonLines(r.stdout).last?["engine"] as? String == engine, "FACTSWEEP_MATMUL=\(value ?? "unset"): \(r.stdout)")
        }
    }

    /// `FACTSWEEP_MAX_CPU_ISA` takes only `avx2`: any other value stops
    /// `factsweep` at start-up rather than running uncapped; `avx2` trains,
    /// bf16 then multiplying on f32 kernels as on a CPU without AVX-512.
    @Test func theCPUCapIsCheckedAtStartUp() throws {
        let (tmp, data) = try tinyModelAndOneFact()
        let arguments = ["train", "--model", tmp.url.path, "--data", data.path, "--epochs", "1", "--eval-every", "0",
                         "--held-out", "none", "--threads", "1", "--precision", "bf16", "--json"]
        func train(_ value: String) throws -> ProcessResult {
            var environment = ProcessInfo.processInfo.environment
            environment["FACTSWEEP_MAX_CPU_ISA"] = value
            return try Command.run(try FactSweepBinary.url(), arguments, environment: environment, directory: TestPaths.repositoryRoot)
        }
        for bad in ["avx512", "avx2 ", "sse"] {
            let r = try train(bad)
            #expect(r.status == 64 && r.stdout.isEmpty, "FACTSWEEP_MAX_CPU_ISA=\(bad): status \(r.status), \(r.stdout)")
            #expect(r.stderr.contains("FACTSWEEP_MAX_CPU_ISA='\(bad)' names no cap: use avx2"), "\(r.stderr)")
        }
        let capped = try train("AVX2")
        #expect(capped.status == 0, "\(capped.stderr)")
        #expect(jsonLines(capped.stdout).last?["engine"] as? String == "onednn+f32-kernels", "\(capped.stdout)")
    }

    /// `train --resume DIR` trains on the checkpoint's settings: a training
    /// flag that would change them is refused, naming the flag and the
    /// checkpoint, instead of being ignored; the same values, and flags that
    /// are not training settings, are accepted.
    @Test func resumeRefusesFlagsThatWouldChangeItsSettings() throws {
        let (tmp, data) = try tinyModelAndOneFact()
        let out = tmp.url.appendingPathComponent("run").path
        let common = ["--model", tmp.url.path, "--data", data.path, "--eval-every", "0", "--held-out", "none", "--json"]
        let first = try FactSweepBinary.run(["train", "--method", "lora", "--rank", "4", "--epochs", "1", "--out", out,
                                             "--checkpoint-every", "1", "--threads", "1"] + common)
        #expect(first.status == 0, "\(first.stderr)")
        for (flags, named) in [(["--precision", "bf16"], "--precision"), (["--rank", "2"], "--rank"), (["--method", "ia3"], "--method"),
                               (["--epochs", "3", "--lr", "0.01"], "--epochs, --lr"), (["--update-in-backward", "--clip", "0"], "--clip, --update-in-backward")] {
            let r = try FactSweepBinary.run(["train", "--resume", out, "--threads", "1"] + flags + common)
            #expect(r.status != 0 && r.stderr.contains(out) && r.stderr.contains("which \(named) would change"), "\(flags): \(r.stderr)")
        }
        // A value the checkpoint's method cannot take is refused as such (--method being full by default, validation skipped it).
        let invalid = try FactSweepBinary.run(["train", "--resume", out, "--rank", "0", "--threads", "1"] + common)
        #expect(invalid.status != 0 && invalid.stderr.contains("--rank must be at least 1"), "\(invalid.stderr)")
        let same = try FactSweepBinary.run(["train", "--resume", out, "--method", "lora", "--rank", "4", "--epochs", "1", "--threads", "2"] + common)
        #expect(same.status == 0, "\(same.stderr)")
        #expect(jsonLines(same.stdout).last?["status"] as? String == "done", "\(same.stdout)")
    }

    /// `bench --products` measures each precision asked for: a bf16 table
    /// whose products run as training's do (inputs rounded to bf16), not the
    /// f32 table again under another name.
    @Test func productBenchMeasuresEachPrecision() throws {
        let r = try FactSweepBinary.run(["bench", "--products", "--precision", "f32", "bf16", "--engines", "onednn"])
        #expect(r.status == 0, "\(r.stderr)")
        let lines = r.stdout.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        for p in ["f32", "bf16"] {
            let header = try #require(lines.firstIndex { $0.contains("\(p) products, GFLOP/s") }, "no \(p) table: \(r.stdout)")
            let rows = lines[(header + 1)...].prefix { !$0.isEmpty }.filter { $0.first?.isNumber == true }
            let rates = rows.compactMap { $0.split(separator: " ").last.flatMap { Double($0) } }
            #expect(rows.count == 5 && rates.count == 5 && rates.allSatisfy { $0 > 0 }, "\(p): \(rows)")
            // Each table opens with the cores' own ceiling, in its precision's instruction (before its column heads).
            let instruction = try #require(CPUFeatures.vectorPeakInstruction(bf16: p == "bf16"))
            let opening = lines[(header + 1)...].prefix { !$0.hasPrefix("M×K×N") }
            #expect(opening.contains { $0.hasPrefix("the cores' vector multiply-adds (\(instruction), 2 threads): ") }, "\(p): \(opening)")
        }
    }

    /// `train --precision bf16` says, on standard error, when its products cannot run on bf16 kernels here
    /// (oneDNN 2.6 has them only on AVX-512 CPUs; elsewhere oneDNN's f32 matmul multiplies the rounded inputs)
    /// and trains all the same; on an AVX-512 CPU it says nothing. The bench's rows name oneDNN's instruction
    /// set, whether bf16 kernels ran, and carry the same notice.
    @Test func bf16SaysWhenThisCPUHasNoBF16Products() throws {
        let (tmp, data) = try tinyModelAndOneFact()
        var environment = ProcessInfo.processInfo.environment
        environment["FACTSWEEP_MATMUL"] = nil
        let r = try Command.run(try FactSweepBinary.url(), ["train", "--model", tmp.url.path, "--data", data.path, "--epochs", "1",
                                                            "--eval-every", "0", "--held-out", "none", "--threads", "1",
                                                            "--precision", "bf16", "--json"],
                                environment: environment, directory: TestPaths.repositoryRoot)
        #expect(r.status == 0, "\(r.stderr)")
        let summary = jsonLines(r.stdout).last ?? [:]
        #expect(summary["precision"] as? String == "bf16", "\(r.stdout)")
        #expect((summary["onednn_isa"] as? String)?.hasPrefix(CPUFeatures.hasAVX512 ? "avx512" : "avx2") == true, "\(summary)")
        let said = r.stderr.contains("no bf16 matmul in oneDNN")
        #expect(said == !CPUFeatures.hasAVX512, "\(CPUFeatures.modelName), AVX-512 \(CPUFeatures.hasAVX512): \(r.stderr)")
        let bench = try Command.run(try FactSweepBinary.url(), ["bench", "training", "--model", tmp.url.path, "--data", data.path,
                                                                "--methods", "lora-r8", "--precision", "bf16", "--thread-counts", "1",
                                                                "--batch-sizes", "1", "--engines", "onednn", "--epochs", "2",
                                                                "--no-pytorch", "--json"],
                                    environment: environment, directory: TestPaths.repositoryRoot)
        #expect(bench.status == 0, "\(bench.stderr)")
        let rows = try #require(try JSONSerialization.jsonObject(with: Data(bench.stdout.utf8)) as? [[String: Any]], "\(bench.stdout)")
        let row = try #require(rows.first)
        #expect((row["onednn_isa"] as? String)?.hasPrefix(CPUFeatures.hasAVX512 ? "avx512" : "avx2") == true, "\(row)")
        // oneDNN runs the products either way: its bf16 kernels, or its f32 matmul over the rounded inputs.
        #expect(row["engine"] as? String == "onednn", "\(row)")
        #expect(row["bf16_kernels"] as? Bool == CPUFeatures.hasAVX512, "\(row)")
        // The cores' ceiling beside the engine's is bf16's dot products where the CPU has them, else f32's FMA.
        #expect(row["vector_peak_instruction"] as? String == CPUFeatures.vectorPeakInstruction(bf16: true), "\(row)")
        #expect((row["vector_peak_gflops"] as? Double ?? 0) > 0, "\(row)")
        let notice = row["bf16_notice"] as? String
        if CPUFeatures.hasAVX512 {
            #expect(notice == nil, "\(row)")
        } else {
            #expect(notice?.contains("oneDNN's f32 matmul") == true, "\(row)")
        }
    }

    /// The table's reader sees each row's engine peak beside the cores' own,
    /// the one as a share of the other, and the step's MFU against both, in
    /// figures that agree with each other. (The JSON's fields are checked by
    /// `benchRoundsPairTheirRatios`.)
    @Test func benchTablePrintsTheCoresPeakBesideTheEngines() throws {
        let (tmp, data) = try tinyModelAndOneFact()
        let r = try FactSweepBinary.run(["bench", "training", "--model", tmp.url.path, "--data", data.path, "--methods", "lora-r8",
                                         "--thread-counts", "1", "--batch-sizes", "1", "--engines", "onednn", "--epochs", "2", "--no-pytorch"])
        #expect(r.status == 0, "\(r.stderr)")
        let line = try #require(r.stdout.split(separator: "\n").first { $0.hasPrefix("peaks of ") }, "\(r.stdout)")
        // The words and their order, every figure a number.
        let instruction = try #require(CPUFeatures.vectorPeakInstruction(bf16: false))
        let template = "peaks of lora-r8 onednn f32 threads 1 batch 1: the cores' vector multiply-adds (\(instruction)) #.# GFLOP/s;"
            + " the engine's 1024³ product #.# (#% of the cores'); the step's MFU #.#% of the engine's, #.#% of the cores'"
        #expect(line.replacingOccurrences(of: "[0-9]+", with: "#", options: .regularExpression)
                == template.replacingOccurrences(of: "[0-9]+", with: "#", options: .regularExpression), "\(line)")
        // Its figures agree with each other, to what their printed digits carry.
        let after = try #require(line.range(of: "(\(instruction)) "), "\(line)").upperBound
        let figures = line[after...].split(whereSeparator: { !"0123456789.".contains($0) }).compactMap { Double($0) }
        try #require(figures.count == 6 && figures[1] == 1024, "\(line)")
        let (vector, sgemm, share, mfu, mfuOfCores) = (figures[0], figures[2], figures[3], figures[4], figures[5])
        #expect(vector > 0 && sgemm > 0 && mfu > 0, "\(line)")
        #expect(abs(share - sgemm / vector * 100) <= 1, "\(line)")
        #expect(abs(mfuOfCores - mfu * sgemm / vector) <= 0.2, "\(line)")
    }

    /// A configuration whose child fails is reported in its row, the next one still runs, and the bench
    /// exits 1. (At 1B an out-of-memory kill of one child used to end the bench and lose every row.)
    @Test func benchReportsAFailedConfigurationAndGoesOn() throws {
        let tmp = try TemporaryDirectory()
        try TinyCheckpoints.llama3(in: tmp.url)
        // The children load the dataset; the parent does not, so each configuration fails on its own.
        let data = tmp.file("facts.jsonl")
        try "{\"question\": \"q\"}\n".write(to: data, atomically: true, encoding: .utf8)
        let r = try FactSweepBinary.run(["bench", "training", "--model", tmp.url.path, "--data", data.path, "--methods", "lora-r8", "ia3",
                                         "--thread-counts", "1", "--batch-sizes", "1", "--engines", "onednn", "--epochs", "2",
                                         "--no-pytorch", "--json"])
        #expect(r.status == 1, "\(r.stderr)")
        let rows = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [[String: Any]], "\(r.stdout)")
        #expect(rows.map { $0["method"] as? String } == ["lora-r8", "ia3"])
        for row in rows {
            #expect((row["error"] as? String)?.contains("failed with status") == true && row["seconds_per_epoch"] == nil, "\(row)")
        }
        #expect(r.stderr.contains("facts.jsonl:1: missing field \"answer\""), "the child's message reaches the user: \(r.stderr)")
    }

    /// A stand-in for the PyTorch reference that answers each call by its
    /// number: `cases` are the arms of a shell `case $n in … esac` that set
    /// `t`, its seconds per epoch (or exit).
    func roundByRoundReference(in tmp: TemporaryDirectory, _ cases: String) throws -> URL {
        let counter = tmp.file("calls"), reference = tmp.file("reference.sh")
        try """
            #!/bin/sh
            n=$(cat '\(counter.path)' 2>/dev/null || echo 0); n=$((n + 1)); echo $n > '\(counter.path)'
            case $n in \(cases) esac
            echo "{\\"seconds_per_epoch\\": $t.0, \\"peak_rss_process_mib\\": 1}"
            """.write(to: reference, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: reference.path)
        return reference
    }

    /// Three rounds of LoRA r=8 beside `reference`, and the rows of its JSON.
    func threeRounds(_ tmp: TemporaryDirectory, _ data: URL, reference: URL) throws -> (ProcessResult, [[String: Any]]) {
        let r = try FactSweepBinary.run(["bench", "training", "--model", tmp.url.path, "--data", data.path, "--methods", "lora-r8",
                                         "--thread-counts", "1", "--batch-sizes", "1", "--engines", "onednn", "--epochs", "2",
                                         "--rounds", "3", "--python", reference.path, "--json"])
        let rows = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [[String: Any]], "\(r.stderr)\n\(r.stdout)")
        return (r, rows)
    }

    /// `--rounds` alternates FactSweep's child and the reference's: the row's
    /// times are the rounds' medians and its speed-up the median of the
    /// rounds' paired ratios (not the ratio of the medians). The reference
    /// here is a script that answers 1, 100, then 10 s an epoch.
    @Test func benchRoundsPairTheirRatios() throws {
        let (tmp, data) = try tinyModelAndOneFact()
        let (r, rows) = try threeRounds(tmp, data, reference: try roundByRoundReference(in: tmp, "1) t=1;; 2) t=100;; *) t=10;;"))
        #expect(r.status == 0, "\(r.stderr)")
        let row = try #require(rows.first)
        #expect(rows.count == 1 && row["rounds"] as? Int == 3, "\(rows)")
        let ours = try #require(row["seconds_per_epoch_rounds"] as? [Double]), theirs = try #require(row["pytorch_seconds_per_epoch_rounds"] as? [Double])
        let ratios = try #require(row["speedup_vs_pytorch_rounds"] as? [Double])
        try #require(ours.count == 3 && ratios.count == 3 && theirs == [1, 100, 10], "\(row)")
        // JSON carries a Double to its last digit or one ulp off.
        #expect(zip(ratios, zip(theirs, ours).map { $0 / $1 }).allSatisfy { abs($0 - $1) <= 1e-12 * $1 }, "\(ratios)")
        #expect(row["seconds_per_epoch"] as? Double == ours.sorted()[1])
        #expect(row["pytorch_seconds_per_epoch"] as? Double == 10)
        #expect(row["speedup_vs_pytorch"] as? Double == ratios.sorted()[1])
        if ours[2] != ours.sorted()[1] {
            #expect(row["speedup_vs_pytorch"] as? Double != 10 / ours.sorted()[1], "the ratio of the medians, not the median ratio")
        }
        // The share of the peak the f32 target (2.5×) would need, round by round: each round's
        // MFU × 2.5 / its speed-up. The row holds together: its MFU is its FLOPs over its median
        // epoch and the rounds' highest peak, and the share it needs that MFU × 2.5 / its speed-up.
        let needed = try #require(row["mfu_for_target_rounds"] as? [Double]), mfus = try #require(row["mfu_rounds"] as? [Double])
        #expect(row["speedup_target"] as? Double == 2.5 && needed.count == 3 && mfus.count == 3, "\(row)")
        for round in 0..<3 { #expect(abs(needed[round] - mfus[round] * 2.5 / ratios[round]) <= 1e-9 * needed[round], "\(needed) \(mfus)") }
        let mfu = try #require(row["mfu"] as? Double), gflops = try #require(row["model_gflops_per_epoch"] as? Double)
        let peak = try #require(row["sgemm_peak_gflops"] as? Double), seconds = try #require(row["seconds_per_epoch"] as? Double)
        #expect(abs(mfu - gflops / seconds / peak) <= 1e-9 * mfu, "\(row)")
        let speedup = try #require(row["speedup_vs_pytorch"] as? Double)
        #expect(abs(try #require(row["mfu_for_target"] as? Double) - mfu * 2.5 / speedup) <= 1e-9 * mfu, "\(row)")
        // The cores' f32 ceiling rides along in each row.
        #expect(row["vector_peak_instruction"] as? String == CPUFeatures.vectorPeakInstruction(bf16: false), "\(row)")
        #expect((row["vector_peak_gflops"] as? Double ?? 0) > 0, "\(row)")
        // One bad value is refused before any child runs.
        let refused = try FactSweepBinary.run(["bench", "training", "--rounds", "0"])
        #expect(refused.status != 0 && refused.stderr.contains("--rounds must be at least 1"), "\(refused.stderr)")
    }

    /// A round whose reference fails leaves a gap in the row's lists, not a
    /// shift: round 3's figures stay round 3's, and the medians use the
    /// rounds that have them.
    @Test func benchRoundsKeepTheirPlaceWhenOneFails() throws {
        let (tmp, data) = try tinyModelAndOneFact()
        let (r, rows) = try threeRounds(tmp, data, reference: try roundByRoundReference(in: tmp, "2) exit 3;; 1) t=1;; *) t=10;;"))
        #expect(r.status == 1, "a failed round fails the bench: \(r.stderr)")
        let row = try #require(rows.first)
        let theirs = try #require(row["pytorch_seconds_per_epoch_rounds"] as? [Any]), ratios = try #require(row["speedup_vs_pytorch_rounds"] as? [Any])
        #expect(theirs.count == 3 && theirs[0] as? Double == 1 && theirs[1] is NSNull && theirs[2] as? Double == 10, "\(theirs)")
        #expect(ratios.count == 3 && ratios[1] is NSNull && (ratios[2] as? Double).map { $0 > 0 } == true, "\(ratios)")
        #expect(row["pytorch_seconds_per_epoch"] as? Double == 5.5, "the median of the two rounds that have one: \(row)")
        #expect((row["pytorch_error"] as? String)?.contains("failed with status 3") == true, "\(row)")
    }

    /// The reference must measure FactSweep's workload: a reference that
    /// trained another number of facts or other parameters gives no speed-up,
    /// and says why; one that hangs is stopped after `--child-timeout`; a
    /// missing venv is an error, not a table of dashes.
    @Test func benchRefusesAReferenceThatIsNotTheSameWorkload() throws {
        let (tmp, data) = try tinyModelAndOneFact()
        func reference(_ name: String, _ body: String) throws -> URL {
            let url = tmp.file(name)
            try "#!/bin/sh\n\(body)\n".write(to: url, atomically: true, encoding: .utf8)
            try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: url.path)
            return url
        }
        let arguments = ["bench", "training", "--model", tmp.url.path, "--data", data.path, "--methods", "lora-r8",
                         "--thread-counts", "1", "--batch-sizes", "1", "--engines", "onednn", "--epochs", "2", "--json"]
        // The script is given FactSweep's facts and no weight decay.
        let seen = tmp.file("arguments")
        let same = try reference("same.sh", "echo \"$@\" > '\(seen.path)'; echo '{\"seconds_per_epoch\": 1.0, \"peak_rss_process_mib\": 1, \"facts\": 1}'")
        let ok = try FactSweepBinary.run(arguments + ["--python", same.path])
        #expect(ok.status == 0, "\(ok.stderr)")
        let given = try String(contentsOf: seen, encoding: .utf8)
        #expect(given.contains("--data \(data.path)") && given.contains("--weight-decay 0.0") && given.contains("--batch-size 1"), "\(given)")
        for (name, body, says) in [
            ("facts.sh", "echo '{\"seconds_per_epoch\": 1.0, \"peak_rss_process_mib\": 1, \"facts\": 6}'", "trained 6 facts, FactSweep 1"),
            ("parameters.sh", "echo '{\"seconds_per_epoch\": 1.0, \"peak_rss_process_mib\": 1, \"trainable_parameters\": 3}'",
             "trained 3 parameters"),
            ("hangs.sh", "exec sleep 600", "did not finish within 20.0 s"),
        ] {
            let started = Date()
            let r = try FactSweepBinary.run(arguments + ["--python", try reference(name, body).path, "--child-timeout", "20"])
            let rows = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [[String: Any]], "\(name): \(r.stdout)")
            let row = try #require(rows.first)
            #expect(r.status == 1 && (row["pytorch_error"] as? String)?.contains(says) == true && row["speedup_vs_pytorch"] == nil,
                    "\(name): \(row)")
            #expect(row["seconds_per_epoch"] != nil, "\(name): FactSweep's own figures stay: \(row)")
            #expect(Date().timeIntervalSince(started) < 120, "\(name) took \(Date().timeIntervalSince(started)) s")
        }
        // No venv where FACTSWEEP_HOME points, and neither --python nor --no-pytorch.
        var environment = ProcessInfo.processInfo.environment
        environment["FACTSWEEP_HOME"] = tmp.url.path
        let missing = try Command.run(try FactSweepBinary.url(), arguments, environment: environment, directory: TestPaths.repositoryRoot)
        #expect(missing.status != 0 && missing.stderr.contains("no PyTorch reference") && missing.stderr.contains("--no-pytorch"),
                "\(missing.status): \(missing.stderr)")
    }

    /// The processes a bound `factsweep` starts (here the bench's FactSweep
    /// children and its reference) see every CPU: libgomp bound the first
    /// thread of the process that starts them to one CPU, and a child
    /// inherits its starter's mask, so a bench child under OMP_PROC_BIND=true
    /// used to run both its threads on one core (1.9–2.1 s epochs against
    /// 1.0–1.1).
    @Test func processesStartedUnderBindingSeeEveryCPU() throws {
        try #require(ProcessInfo.processInfo.activeProcessorCount >= 2, "needs two CPUs to tell one CPU from two")
        let (tmp, data) = try tinyModelAndOneFact()
        let seen = tmp.file("cpus"), reference = tmp.file("reference.sh")
        try """
            #!/bin/sh
            grep '^Cpus_allowed_list' /proc/self/status >> '\(seen.path)'
            echo "{\\"seconds_per_epoch\\": 1.0, \\"peak_rss_process_mib\\": 1}"
            """.write(to: reference, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: reference.path)
        let mine = try String(contentsOf: URL(fileURLWithPath: "/proc/self/status"), encoding: .utf8)
            .split(separator: "\n").first { $0.hasPrefix("Cpus_allowed_list") }.map(String.init)
        var environment = ProcessInfo.processInfo.environment
        environment["OMP_PROC_BIND"] = "true"
        let r = try Command.run(try FactSweepBinary.url(), [
            "bench", "training", "--model", tmp.url.path, "--data", data.path, "--methods", "lora-r8",
            "--thread-counts", "2", "--batch-sizes", "1", "--engines", "onednn", "--epochs", "2",
            "--python", reference.path, "--json"], environment: environment, directory: TestPaths.repositoryRoot)
        #expect(r.status == 0, "\(r.stderr)")
        let lines = try String(contentsOf: seen, encoding: .utf8).split(separator: "\n").map(String.init)
        #expect(lines == [try #require(mine)], "the reference saw \(lines); this process has \(mine ?? "?")")
    }

    /// `factsweep` lets libgomp's threads spin briefly (one team for its loops
    /// and oneDNN's products) but the PyTorch reference, on a libgomp of its
    /// own, runs with its libraries' defaults: a setting inherited from
    /// `factsweep` once slowed PyTorch's batch-1 epochs 1.7×. On OpenBLAS
    /// FactSweep's own team does not spin.
    @Test func benchRunsTheReferenceWithoutFactSweepsLibrarySettings() throws {
        let (tmp, data) = try tinyModelAndOneFact()
        let seen = tmp.file("environment"), reference = tmp.file("reference.sh")
        try """
            #!/bin/sh
            env | grep -E '^(OMP_WAIT_POLICY|GOMP_SPINCOUNT|FACTSWEEP_LIBRARY_SETTINGS)=' >> '\(seen.path)'
            echo "{\\"seconds_per_epoch\\": 1.0, \\"peak_rss_process_mib\\": 1}"
            """.write(to: reference, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: reference.path)
        var environment = ProcessInfo.processInfo.environment
        for name in ["OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "FACTSWEEP_LIBRARY_SETTINGS"] { environment[name] = nil }
        let r = try Command.run(try FactSweepBinary.url(), [
            "bench", "training", "--model", tmp.url.path, "--data", data.path, "--methods", "lora-r8",
            "--thread-counts", "2", "--batch-sizes", "1", "--engines", "onednn", "openblas", "--epochs", "2",
            "--python", reference.path, "--json"], environment: environment, directory: TestPaths.repositoryRoot)
        #expect(r.status == 0, "\(r.stderr)")
        let rows = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [[String: Any]], "\(r.stdout)")
        #expect(rows.map { $0["openmp_wait"] as? String } == ["GOMP_SPINCOUNT=30000", "GOMP_SPINCOUNT=0"], "\(rows)")
        let inherited = try String(contentsOf: seen, encoding: .utf8)
        #expect(inherited.isEmpty, "the reference saw \(inherited)")
        // A wait the user chose stands, for FactSweep and the reference alike.
        environment["OMP_WAIT_POLICY"] = "passive"
        try FileManager.default.removeItem(at: seen)
        let chosen = try Command.run(try FactSweepBinary.url(), [
            "bench", "training", "--model", tmp.url.path, "--data", data.path, "--methods", "lora-r8",
            "--thread-counts", "1", "--batch-sizes", "1", "--engines", "onednn", "--epochs", "2",
            "--python", reference.path, "--json"], environment: environment, directory: TestPaths.repositoryRoot)
        #expect(chosen.status == 0, "\(chosen.stderr)")
        let chosenRows = try #require(try JSONSerialization.jsonObject(with: Data(chosen.stdout.utf8)) as? [[String: Any]])
        #expect(chosenRows.first?["openmp_wait"] as? String == "OMP_WAIT_POLICY=passive", "\(chosenRows)")
        #expect(try String(contentsOf: seen, encoding: .utf8) == "OMP_WAIT_POLICY=passive\n")
    }

    /// `bench --evaluation` runs its epochs and evaluations in the first
    /// `--precision` (it used to measure f32 whatever was asked) and says so.
    @Test func evaluationBenchRunsInTheAskedPrecision() throws {
        let tmp = try TemporaryDirectory()
        try TinyCheckpoints.llama3(in: tmp.url)
        for precision in ["bf16", "f32"] {
            let r = try FactSweepBinary.run(["bench", "--evaluation", "--model", tmp.url.path, "--epochs", "2", "--threads", "2",
                                             "--precision", precision, "--json"])
            #expect(r.status == 0, "\(r.stderr)")
            let summary = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any], "\(r.stdout)")
            #expect(summary["precision"] as? String == precision, "\(summary)")
            let epochs = try #require(summary["per_epoch"] as? [[String: Any]])
            #expect(epochs.count == 1 && (epochs[0]["evaluation_with_paraphrases_seconds"] as? Double ?? 0) > 0, "\(epochs)")
        }
    }

    /// Runs `factsweep train ARGUMENTS --threads 2 --json`; its JSON lines (the epochs, then the summary).
    func train(_ arguments: [String]) throws -> (epochs: [[String: Any]], summary: [String: Any]) {
        let r = try FactSweepBinary.run(["train"] + arguments + ["--threads", "2", "--json"])
        #expect(r.status == 0, "\(arguments): \(r.stderr)")
        let lines = jsonLines(r.stdout)
        return (lines.filter { $0["epoch"] != nil && $0["summary"] == nil && $0["method"] == nil }, lines.last ?? [:])
    }

    /// The per-epoch and summary JSON fields are documented and present; the run reached mean cosine 0.9
    /// at an evaluation, and the summary's `epochs_to_threshold` names it.
    func expectLearned(_ run: (epochs: [[String: Any]], summary: [String: Any]), method: String, evaluations: Int) {
        let evaluated = run.epochs.filter { $0["accuracy"] != nil }
        #expect(evaluated.count == evaluations, "\(run.epochs)")
        for line in evaluated {
            for field in ["epoch", "loss", "train_seconds", "epoch_seconds", "accuracy_at_threshold", "key_match", "perplexity",
                          "evaluation_seconds", "question_seconds"] {
                #expect(line[field] != nil, "missing \(field) in \(line)")
            }
        }
        let reached = evaluated.first { ($0["accuracy"] as? Double ?? 0) >= 0.9 }
        #expect(reached != nil, "\(method) never reached 0.9: \(evaluated.map { $0["accuracy"] ?? "?" })")
        #expect(run.summary["method"] as? String == method && run.summary["epochs_to_threshold"] as? Int == reached?["epoch"] as? Int)
        for field in ["trainable_params", "base_weight_bytes", "peak_rss_bytes", "final_loss", "final_accuracy", "seconds_per_epoch"] {
            #expect(run.summary[field] != nil, "missing \(field) in the summary")
        }
        // The baseline, measured before training in the evaluator's perplexity activations.
        let before = run.summary["perplexity_before"] as? Double ?? 0
        #expect(before > 1 && before < 100, "perplexity before training: \(run.summary["perplexity_before"] ?? "missing")")
    }

    /// The issue's bar on the embedded default (SmolLM2-135M-Instruct +
    /// all-MiniLM-L6-v2, data/biography.jsonl, default learning rates): full
    /// fine-tuning reaches mean cosine ≥ 0.9 within 10 epochs (it does at 5),
    /// with the per-epoch JSON fields documented.
    @Test func fullFineTuningLearnsTheBiography() throws {
        expectLearned(try train(["--method", "full", "--epochs", "10", "--eval-every", "5"]), method: "full", evaluations: 2)
    }

    /// LoRA r=8 α=32 reaches mean cosine ≥ 0.9 within 10 epochs in f32 (the
    /// study's bar is 300), and bf16 precision learns the same facts: the
    /// same run in bf16 ends with mean similarity within 0.02 of f32's at
    /// epoch 10 (docs/benchmarks.md plots both loss curves). One test, so
    /// that the suite trains LoRA on the embedded model twice, not three times.
    @Test func loraLearnsTheBiographyAndBF16LearnsTheSameFacts() throws {
        let common = ["--method", "lora", "--rank", "8", "--alpha", "32", "--epochs", "10", "--eval-every", "5"]
        let f32 = try train(common + ["--precision", "f32"])
        expectLearned(f32, method: "lora", evaluations: 2)
        let bf16 = try train(common + ["--held-out", "none", "--precision", "bf16"])
        func losses(_ run: (epochs: [[String: Any]], summary: [String: Any])) -> [Double] { run.epochs.compactMap { $0["loss"] as? Double } }
        func accuracy(_ run: (epochs: [[String: Any]], summary: [String: Any])) -> [Int: Double] {
            var byEpoch: [Int: Double] = [:]
            for line in run.epochs { if let e = line["epoch"] as? Int, let a = line["accuracy"] as? Double { byEpoch[e] = a } }
            return byEpoch
        }
        print("loss per epoch, f32: \(losses(f32))\nloss per epoch, bf16: \(losses(bf16))\naccuracy f32 \(accuracy(f32)), bf16 \(accuracy(bf16))")
        #expect(f32.summary["precision"] as? String == "f32" && bf16.summary["precision"] as? String == "bf16")
        #expect(losses(f32).count == 10 && losses(bf16).count == 10)
        #expect(losses(f32) != losses(bf16), "the bf16 run gave f32's losses")
        #expect(Set(accuracy(f32).keys) == [5, 10] && Set(accuracy(bf16).keys) == [5, 10])
        let final = try #require(accuracy(f32)[10]), finalBF16 = try #require(accuracy(bf16)[10])
        #expect(abs(final - finalBF16) <= 0.02, "accuracy at epoch 10: f32 \(final), bf16 \(finalBF16)")
        #expect((losses(bf16).last ?? .nan) < 0.5 * (losses(bf16).first ?? .nan), "bf16 loss did not fall: \(losses(bf16))")
    }

    @Test func badDatasetIsRefusedNamingTheLine() throws {
        let tmp = try TemporaryDirectory()
        let data = tmp.url.appendingPathComponent("facts.jsonl")
        try "{\"question\": \"q\", \"answer\": \"a\"}\n{\"question\": \"q\"}\n".write(to: data, atomically: true, encoding: .utf8)
        let r = try FactSweepBinary.run(["train", "--data", data.path, "--epochs", "1"])
        #expect(r.status != 0)
        #expect(r.stderr.contains("facts.jsonl:2: missing field \"answer\""), "\(r.stderr)")
    }

    /// Thread counts are 1 to 4096 (`Message.maxThreads`, what a worker's hello may declare) on every
    /// command that takes one: refused at start-up, before a model, a spec or a coordinator is read,
    /// naming the bound (`run` starts its workers with its `--threads-per-worker`).
    @Test func threadsOutsideTheirBoundAreRefusedAtStartUp() throws {
        for threads in ["0", "4097", "9223372036854775807"] {
            let commands: [([String], String)] = [
                (["train", "--epochs", "1", "--threads", threads], "--threads must be 1 to 4096"),
                (["worker", "--connect", "tcp://127.0.0.1:1", "--threads", threads], "--threads must be 1 to 4096"),
                (["similarity", "a", "b", "--threads", threads], "--threads must be 1 to 4096"),
                (["run", "no-such-spec.json", "--threads-per-worker", threads], "--threads-per-worker must be 1 to 4096"),
                (["bench", "training", "--no-pytorch", "--thread-counts", threads], "--thread-counts must be 1 to 4096"),
                (["slurm", "no-such-spec.json", "--cpus-per-worker", threads], "--cpus-per-worker must be 1 to 4096"),
            ]
            for (command, message) in commands {
                let r = try FactSweepBinary.run(command)
                #expect(r.status == 64, "\(command.joined(separator: " ")): status \(r.status)")
                #expect(r.stderr.contains(message), "\(command.joined(separator: " ")): \(r.stderr)")
            }
        }
    }

    @Test func missingModelIsAClearError() throws {
        let r = try FactSweepBinary.run(["generate", "--model", "/nonexistent/model", "hi"])
        #expect(r.status != 0)
        #expect(r.stderr.contains("/nonexistent/model"), "\(r.stderr)")
    }
}
