// TokenizerSpeedTests: loading a 128k vocabulary and encoding must not be what
// a training run waits for. Bounds are loose (shared CI machines); the measured
// numbers are printed.
import Foundation
import Testing
import TestSupport
@testable import Core

@Suite struct TokenizerSpeedTests {
    func seconds(_ body: () throws -> Void) rethrows -> Double {
        let start = DispatchTime.now().uptimeNanoseconds
        try body()
        return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
    }

    @Test func llama3LoadsAndEncodesQuickly() throws {
        let url = try TestPaths.model(TokenizerFixtures.llama3File)
        var tokenizer: Tokenizer?
        let load = try seconds { tokenizer = try Tokenizer(tokenizerJSON: url) }
        let loaded = try #require(tokenizer)
        // Pseudo-random words defeat the chunk cache: this is the merge loop's speed.
        var generator = SystemRandomNumberGenerator()
        let letters = Array("abcdefghijklmnopqrstuvwxyzéü")
        let words = (0..<40_000).map { _ in String((0..<Int.random(in: 2...9, using: &generator)).map { _ in letters.randomElement(using: &generator) ?? "a" }) }
        let text = words.joined(separator: " ")
        var count = 0
        let encode = seconds { count = loaded.encode(text).count }
        print("llama3 tokenizer.json load \(String(format: "%.3f", load)) s; "
              + "encode \(count) tokens of fresh words in \(String(format: "%.3f", encode)) s "
              + "(\(Int(Double(count) / encode)) tokens/s)")
        #expect(load < 1.5)
        #expect(Double(count) / encode > 20_000)
    }
}
