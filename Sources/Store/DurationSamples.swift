// DurationSamples and DurationSummary: durations kept whole for exact
// percentiles — the store times its writes, the coordinator its dispatches.
import Foundation

/// Durations in seconds, every one kept (for exact percentiles); thread-safe.
public final class DurationSamples: @unchecked Sendable {
    private let lock = NSLock()
    private var values: [Double] = []

    public init() {}

    public func record(_ seconds: Double) { lock.withLock { values.append(seconds) } }

    /// Times `body` and records its duration, whether it returns or throws.
    public func time<T>(_ body: () throws -> T) rethrows -> T {
        let start = ContinuousClock.now
        defer { record(Self.seconds(ContinuousClock.now - start)) }
        return try body()
    }

    public var summary: DurationSummary { DurationSummary(lock.withLock { values }) }

    public static func seconds(_ d: Duration) -> Double {
        Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
    }
}

/// Count, total and nearest-rank percentiles of a set of durations, in seconds.
public struct DurationSummary: Sendable, Equatable, Codable {
    public var count: Int
    public var totalSeconds: Double
    public var p50Seconds: Double?
    public var p99Seconds: Double?
    public var maxSeconds: Double?

    public init(_ values: [Double]) {
        let sorted = values.sorted()
        count = sorted.count
        totalSeconds = sorted.reduce(0, +)
        func rank(_ p: Double) -> Double? {
            sorted.isEmpty ? nil : sorted[max(0, Int((p * Double(sorted.count)).rounded(.up)) - 1)]
        }
        p50Seconds = rank(0.5)
        p99Seconds = rank(0.99)
        maxSeconds = sorted.last
    }

    enum CodingKeys: String, CodingKey {
        case count, totalSeconds = "total_seconds", p50Seconds = "p50_seconds", p99Seconds = "p99_seconds",
             maxSeconds = "max_seconds"
    }
}
