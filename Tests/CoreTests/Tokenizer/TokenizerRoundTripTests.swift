// TokenizerRoundTripTests: a large text of fresh words (which defeat the merge
// cache) encodes and decodes back to itself. Speed is not asserted here (tests
// run on shared machines); timings are printed for information only.
import Foundation
import Testing
import TestSupport
@testable import Core

@Suite struct TokenizerRoundTripTests {
    @Test func llama3RoundTripsFortyThousandFreshWords() throws {
        let url = try TestPaths.model(TokenizerFixtures.llama3File)
        let start = DispatchTime.now().uptimeNanoseconds
        let tokenizer = try Tokenizer(tokenizerJSON: url)
        let loaded = DispatchTime.now().uptimeNanoseconds
        var generator = SeededGenerator(seed: 42)
        let letters = Array("abcdefghijklmnopqrstuvwxyzéü")
        let words = (0..<40_000).map { _ in
            String((0..<Int.random(in: 2...9, using: &generator)).map { _ in letters.randomElement(using: &generator) ?? "a" })
        }
        let text = words.joined(separator: " ")
        let ids = tokenizer.encode(text)
        let encoded = DispatchTime.now().uptimeNanoseconds
        #expect(tokenizer.decode(ids) == text)
        #expect(ids.count > words.count)
        print("llama3 tokenizer.json load \(Double(loaded - start) / 1e9) s; encode \(ids.count) tokens in \(Double(encoded - loaded) / 1e9) s (information only)")
    }
}
