// Trials' stored configurations are read by `JSONValue(parsing:)` (JSONScanner)
// rather than Foundation's JSONDecoder, which took two thirds of a report at
// 100,000 trials: the settings the report and the dashboard name lines by must
// come out the same for every configuration a spec can make.
import Foundation
import Testing
import TestSupport
@testable import Coordinator
@testable import Report
import Trial

@Suite struct TrialSettingsParsingTests {
    /// The settings as they were read before: JSONDecoder into `JSONValue`.
    static func decoded(_ config: String) -> TrialSettings? {
        (try? JSONDecoder().decode(JSONValue.self, from: Data(config.utf8))).flatMap(TrialSettings.init)
    }

    @Test func everyExampleSpecsConfigurationsReadAsBefore() throws {
        let folder = TestPaths.repositoryRoot.appendingPathComponent("examples")
        let specs = try FileManager.default.contentsOfDirectory(atPath: folder.path).filter { $0.hasSuffix(".json") }.sorted()
        #expect(specs.count >= 10, "\(specs)")
        var configurations = 0
        for spec in specs {
            let plan = try SweepPlan.load(folder.appendingPathComponent(spec))
            for trial in plan.trials {
                let config = String(decoding: trial.canonicalConfig, as: UTF8.self)
                let parsed = TrialSettings(configJSON: config)
                #expect(parsed != nil && parsed == Self.decoded(config), "\(spec): \(config)")
                configurations += 1
            }
        }
        #expect(configurations > 100)
    }

    @Test func valuesReadAsJSONDecoderReadThem() throws {
        // Escapes, unicode, nesting, lists, exponents, booleans, null, a seed past 2^53.
        let config = #"""
        {"training": {"seed": 18446744073709551615, "learningRate": 1e-05, "lossScope": "answer\u00e9\t\"x\"",
         "method": {"rank": 9007199254740993, "alpha": -0.5, "targets": ["q_proj", "v_proj"], "rsLoRA": false}},
         "model": "/models/\ud83d\ude00.gguf", "evalEpochs": [1, 2, 10], "maxNewTokens": null, "threshold": 0.75,
         "nested": {"deeper": {"list": [{"a": 1}, [2, 3.5]]}}}
        """#
        let parsed = try #require(TrialSettings(configJSON: config))
        #expect(parsed == Self.decoded(config))
        #expect(parsed.values["training.method.rank"] == "9007199254740993", "an integer past 2^53 kept exactly")
        #expect(parsed.values["model"] == "/models/😀.gguf" && parsed.values["training.lossScope"] == "answeré\t\"x\"")
        #expect(parsed.values["training.learningRate"] == "1e-05" && parsed.values["evalEpochs"] == "[1, 2, 10]")
        #expect(parsed.values["training.seed"] == nil, "the seed is left out")
        // Integral numbers written with a fraction or an exponent, as JSONEncoder writes a large Float.
        let integral = #"{"training": {"optimizer": {"maxGradNorm": 1e+08}}, "x": 34.0, "y": -0.0, "z": 1e300, "w": 9.3e18, "l": [2.0, 1e+08, 0.5]}"#
        let read = try #require(TrialSettings(configJSON: integral))
        #expect(read == Self.decoded(integral), "\(read.values) against \(String(describing: Self.decoded(integral)?.values))")
        #expect(read.values["training.optimizer.maxGradNorm"] == "100000000" && read.values["l"] == "[2, 100000000, 0.5]")
    }

    @Test func aDocumentIsOneWholeValue() throws {
        #expect(try JSONValue(parsing: " {\"a\": [1, 2]} \n") == .object(["a": .array([.integer(1), .integer(2)])]))
        #expect(try JSONValue(parsing: "9007199254740993") == .integer(9_007_199_254_740_993))
        #expect(try JSONValue(parsing: "92233720368547758070") == .number(92_233_720_368_547_758_070))
        #expect(try JSONValue(parsing: "2.0") == .number(2))
        #expect(try JSONValue(parsing: "-0") == .integer(0) && JSONValue(parsing: "1E+2") == .number(100))
        // A name given twice keeps its first value, as JSONDecoder keeps it.
        let twice = #"{"a": 1, "b": {"c": 2, "c": 3}, "a": 4}"#
        #expect(try JSONValue(parsing: twice) == .object(["a": .integer(1), "b": .object(["c": .integer(2)])]))
        #expect(try JSONValue(parsing: twice) == JSONDecoder().decode(JSONValue.self, from: Data(twice.utf8)))
        #expect(try JSONValue(parsing: #"[[], {}, [1, {"a": [-0.5e-3]}], "\u00e9\/\b"]"#)
                == .array([.array([]), .object([:]), .array([.integer(1), .object(["a": .array([.number(-0.0005)])])]), .string("é/\u{8}")]))
        // What JSON does not allow, and JSONDecoder refused: missing and leading commas, numbers outside
        // JSON's grammar or beyond Double, raw control characters and unknown escapes in strings.
        let notJSON = [#"{"a": 1 "b": 2}"#, "[1 2]", #"{, "a": 1}"#, "[, 1]", #"{"a": 1,}"#, "[1,]", "+1", "01", "-01", ".5",
                       "1.", "1e", "1e+", "-", "1e400", "-1e400", "\"a\u{1}b\"", "\"tab\there\"", #""\x""#, #""\u12""#]
        for bad in ["", "{", "{\"a\": 1} x", "[1, 2] [3]", "nul", "\"open"] + notJSON {
            #expect(throws: JSONScanner.SyntaxError.self, "\(bad.debugDescription)") { try JSONValue(parsing: bad) }
            #expect(TrialSettings(configJSON: bad) == nil)
        }
        #expect(TrialSettings(configJSON: "[1]") == nil, "a configuration is an object")
    }
}
