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
    }

    @Test func aDocumentIsOneWholeValue() throws {
        #expect(try JSONValue(parsing: " {\"a\": [1, 2]} \n") == .object(["a": .array([.integer(1), .integer(2)])]))
        #expect(try JSONValue(parsing: "9007199254740993") == .integer(9_007_199_254_740_993))
        #expect(try JSONValue(parsing: "92233720368547758070") == .number(92_233_720_368_547_758_070))
        #expect(try JSONValue(parsing: "2.0") == .number(2))
        for bad in ["", "{", "{\"a\": 1} x", "[1, 2] [3]", "nul", "\"open"] {
            #expect(throws: JSONScanner.SyntaxError.self, "\(bad.debugDescription)") { try JSONValue(parsing: bad) }
            #expect(TrialSettings(configJSON: bad) == nil)
        }
        #expect(TrialSettings(configJSON: "[1]") == nil, "a configuration is an object")
    }
}
