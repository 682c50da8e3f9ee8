// CheckpointRef: where a trial's newest checkpoint is — a path every worker
// can read, or the checkpoint's bytes for small adapters when hosts share no
// filesystem — as the worker reports it, the store keeps it and an `assign`
// hands it to the next attempt.
import Foundation

/// The state of a trial after `epoch` epochs.
public struct CheckpointRef: Codable, Sendable, Equatable {
    public enum Location: Sendable, Equatable {
        /// A checkpoint directory reachable by the workers (shared storage).
        case path(String)
        /// The checkpoint itself (small adapters); base64 in JSON.
        case inline(Data)
    }

    public var epoch: Int
    public var location: Location

    public init(epoch: Int, location: Location) { self.epoch = epoch; self.location = location }

    enum CodingKeys: String, CodingKey { case epoch, path, inline }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        epoch = try container.decode(Int.self, forKey: .epoch)
        switch (try container.decodeIfPresent(String.self, forKey: .path),
                try container.decodeIfPresent(Data.self, forKey: .inline)) {
        case (let path?, nil): location = .path(path)
        case (nil, let bytes?): location = .inline(bytes)
        default:
            throw DecodingError.dataCorrupted(.init(
                codingPath: decoder.codingPath, debugDescription: "a checkpoint needs exactly one of path and inline"))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(epoch, forKey: .epoch)
        switch location {
        case .path(let path): try container.encode(path, forKey: .path)
        case .inline(let bytes): try container.encode(bytes, forKey: .inline)
        }
    }
}
