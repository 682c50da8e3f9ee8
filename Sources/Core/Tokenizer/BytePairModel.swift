// BytePairModel: a byte-level BPE vocabulary and its merge ranks, and the merge
// loop that turns one pre-tokenized chunk into token ids (with a cache, since
// common words recur constantly).
import Foundation
import Trial

/// A byte-level BPE vocabulary with ranked merges, working on token ids.
final class BytePairModel: @unchecked Sendable {
    /// Token id of each single byte's vocabulary string: the starting symbols.
    private let byteTokens: [Int32]
    /// `(left id << 32 | right id)` → `(rank << 32 | merged id)`.
    private let merges: [UInt64: UInt64]
    /// Chunk bytes → ids. Guarded by `lock`; the model is otherwise immutable,
    /// which is why `@unchecked Sendable` is sound.
    private var cache: [[UInt8]: [Int32]] = [:]
    private let lock = NSLock()
    private static let cacheLimit = 50_000
    /// `byteTokens` entry of a byte the vocabulary lacks.
    private static let missing: Int32 = -1

    /// Builds the model from `vocabulary` (spelling → id) and merges in rank
    /// order; `source` names the file or metadata for error messages.
    init(vocabulary: [TokenSpelling: Int32], merges pairs: [(String, String)], source: String) throws {
        // A byte without a token (SmolLM2 has none for 21 bytes never seen in
        // training) is dropped from the text, as Hugging Face's BPE does when
        // there is no unknown token.
        let byteTokens = (0..<256).map { vocabulary[TokenSpelling(String(ByteLevel.scalarForByte[$0]))] ?? Self.missing }
        var merges = [UInt64: UInt64](minimumCapacity: pairs.count)
        for (rank, (left, right)) in pairs.enumerated() {
            guard let l = vocabulary[TokenSpelling(left)], let r = vocabulary[TokenSpelling(right)],
                  let merged = vocabulary[TokenSpelling(left + right)]
            else {
                throw LoadError.malformed(
                    file: source, reason: "merge \(rank) \"\(left) \(right)\" uses a token missing from the vocabulary")
            }
            let key = Self.pairKey(l, r)
            // The first (lowest-rank) occurrence of a duplicated merge wins, as in Hugging Face.
            if merges[key] == nil { merges[key] = UInt64(rank) << 32 | UInt64(UInt32(bitPattern: merged)) }
        }
        self.byteTokens = byteTokens
        self.merges = merges
    }

    /// The merges as `(left id, right id)`, lowest rank first: what a
    /// tokenizer.json lists. A merge repeated in the source appears once, at
    /// its first rank, which encodes the same since later copies never apply.
    var rankedMerges: [(left: Int32, right: Int32)] {
        merges.sorted { $0.value < $1.value }.map { key, _ in
            (Int32(bitPattern: UInt32(truncatingIfNeeded: key >> 32)), Int32(bitPattern: UInt32(truncatingIfNeeded: key)))
        }
    }

    private static func pairKey(_ left: Int32, _ right: Int32) -> UInt64 {
        UInt64(UInt32(bitPattern: left)) << 32 | UInt64(UInt32(bitPattern: right))
    }

    /// Appends the ids of one chunk's bytes to `ids`.
    func encode(_ chunk: ArraySlice<UInt8>, into ids: inout [Int32]) {
        guard !chunk.isEmpty else { return }
        if chunk.count == 1, let byte = chunk.first {
            if byteTokens[Int(byte)] != Self.missing { ids.append(byteTokens[Int(byte)]) }
            return
        }
        let bytes = Array(chunk)
        lock.lock()
        let cached = cache[bytes]
        lock.unlock()
        if let cached { ids.append(contentsOf: cached); return }
        let result = merge(bytes)
        lock.lock()
        if cache.count >= Self.cacheLimit { cache.removeAll(keepingCapacity: true) }
        cache[bytes] = result
        lock.unlock()
        ids.append(contentsOf: result)
    }

    /// Applies merges lowest rank first, leftmost first among equal ranks,
    /// the order of Hugging Face's `Word::merge_all`; O(n log n) in the chunk
    /// length so that long runs of symbols stay cheap.
    private func merge(_ bytes: [UInt8]) -> [Int32] {
        var symbol = bytes.map { byteTokens[Int($0)] }.filter { $0 != Self.missing }
        let n = symbol.count
        guard n > 1 else { return symbol }
        var next = Array(1...n)  // n marks the end
        var prev = Array(-1..<(n - 1))
        var alive = [Bool](repeating: true, count: n)
        var queue = MinHeap()
        func push(_ at: Int) {
            guard next[at] < n, let value = merges[Self.pairKey(symbol[at], symbol[next[at]])] else { return }
            queue.push((value & 0xFFFF_FFFF_0000_0000) | UInt64(at))
        }
        for i in 0..<(n - 1) { push(i) }
        while let top = queue.pop() {
            let at = Int(top & 0xFFFF_FFFF), rank = top >> 32
            guard alive[at], next[at] < n,
                  let value = merges[Self.pairKey(symbol[at], symbol[next[at]])], value >> 32 == rank
            else { continue }  // stale entry: one side was merged away since
            let right = next[at]
            symbol[at] = Int32(bitPattern: UInt32(truncatingIfNeeded: value))
            alive[right] = false
            next[at] = next[right]
            if next[at] < n { prev[next[at]] = at }
            if prev[at] >= 0 { push(prev[at]) }
            push(at)
        }
        var result: [Int32] = []
        var i = 0
        while i < n { result.append(symbol[i]); i = next[i] }
        return result
    }
}

/// A binary min-heap of packed `(rank << 32 | position)` keys, so that ties in
/// rank pop leftmost first.
private struct MinHeap {
    private var items: [UInt64] = []

    mutating func push(_ item: UInt64) {
        items.append(item)
        var child = items.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard items[child] < items[parent] else { break }
            items.swapAt(child, parent)
            child = parent
        }
    }

    mutating func pop() -> UInt64? {
        guard let last = items.popLast() else { return nil }
        guard !items.isEmpty else { return last }
        let top = items[0]
        items[0] = last
        var parent = 0
        while true {
            let left = 2 * parent + 1, right = left + 1
            var smallest = parent
            if left < items.count && items[left] < items[smallest] { smallest = left }
            if right < items.count && items[right] < items[smallest] { smallest = right }
            if smallest == parent { break }
            items.swapAt(parent, smallest)
            parent = smallest
        }
        return top
    }
}
