// DeliveryFaults and DeliveryLog: a worker's delivery, made worse and written
// down, for the chaos benchmark (`factsweep bench chaos`) and its test. The
// faults duplicate result messages and send some out of order, as a flaky
// network path would; the log records every progress the coordinator
// acknowledged, so that the benchmark can check that none of them is missing
// from run.db afterwards. Neither is used by a production worker.
import Foundation
import Protocol

/// Faults a worker injects into its own result messages. Test and benchmark use only: set through
/// `FACTSWEEP_TEST_FAULTS` (see `parse`), never by a configuration file.
public struct DeliveryFaults: Sendable, Equatable {
    /// Chance that a result message is sent twice in a row.
    public var duplicate = 0.0
    /// Chance that a result message is held back and sent after the next one (or with the next heartbeat).
    public var reorder = 0.0

    public init(duplicate: Double = 0, reorder: Double = 0) { self.duplicate = duplicate; self.reorder = reorder }

    /// The environment variable a worker reads them from: `duplicate=0.05,reorder=0.05`.
    public static let environmentVariable = "FACTSWEEP_TEST_FAULTS"

    /// Faults from `text` (`name=probability`, comma-separated); throws naming the bad part.
    public static func parse(_ text: String) throws -> DeliveryFaults {
        var faults = DeliveryFaults()
        for part in text.split(separator: ",") {
            let pair = part.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            guard pair.count == 2, let chance = Double(pair[1]), (0...1).contains(chance) else {
                throw DeliveryFaultsError(description: "\(environmentVariable): \"\(part)\" is not NAME=PROBABILITY with a probability in 0…1")
            }
            switch pair[0] {
            case "duplicate": faults.duplicate = chance
            case "reorder": faults.reorder = chance
            default: throw DeliveryFaultsError(description: "\(environmentVariable): unknown fault \"\(pair[0])\" (duplicate, reorder)")
            }
        }
        return faults
    }

    var isEmpty: Bool { duplicate == 0 && reorder == 0 }
}

public struct DeliveryFaultsError: Error, CustomStringConvertible {
    public let description: String
}

/// Appends one line per delivery event to a file (`acked TRIAL ATTEMPT EPOCH`, `duplicated ID`,
/// `reordered ID`, `resent COUNT`), each with one write(2) to a file opened for appending, so that a
/// worker killed with SIGKILL loses no line it has written.
public final class DeliveryLog: @unchecked Sendable {
    private let descriptor: Int32

    public init(_ file: URL) throws {
        descriptor = open(file.path, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        guard descriptor >= 0 else {
            throw DeliveryFaultsError(description: "cannot open the delivery log \(file.path): \(String(cString: strerror(errno)))")
        }
    }

    func record(_ fields: [String]) {
        let line = Array((fields.joined(separator: "\t") + "\n").utf8)
        _ = line.withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
    }

    deinit { close(descriptor) }

    /// One acknowledged progress message, as the log holds it.
    public struct Acknowledged: Hashable, Sendable {
        public var trial: String
        public var epoch: Int
    }

    /// What a delivery log file holds: every acknowledged progress, and the count of each other event.
    public static func read(_ file: URL) throws -> (acknowledged: Set<Acknowledged>, events: [String: Int]) {
        var acknowledged = Set<Acknowledged>(), events: [String: Int] = [:]
        for line in try String(contentsOf: file, encoding: .utf8).split(separator: "\n") {
            let fields = line.split(separator: "\t").map(String.init)
            guard let kind = fields.first else { continue }
            if kind == "acked", fields.count == 4, let epoch = Int(fields[3]) {
                acknowledged.insert(.init(trial: fields[1], epoch: epoch))
            } else if kind == "resent", fields.count == 2, let count = Int(fields[1]) {
                events[kind, default: 0] += count
            } else {
                events[kind, default: 0] += 1
            }
        }
        return (acknowledged, events)
    }
}
