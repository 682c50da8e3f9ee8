// ClusterConfig: cluster.json — where the coordinator binds, where workers
// connect, the run and checkpoint directories, the hosts and their workers,
// and the protocol's timing.
import Foundation
import Trial
import Protocol

/// The parsed cluster.json (documented in docs/cluster.md).
public struct ClusterConfig: Codable, Sendable {
    public struct Endpoints: Codable, Sendable {
        public var bind: String
        public var connect: String
        public init(bind: String, connect: String) { self.bind = bind; self.connect = connect }
    }
    public struct Host: Codable, Sendable {
        public var host: String
        public var workers: Int
        public var threadsPerWorker: Int?
        enum CodingKeys: String, CodingKey { case host, workers, threadsPerWorker = "threads_per_worker" }
        public init(host: String, workers: Int, threadsPerWorker: Int?) { self.host = host; self.workers = workers; self.threadsPerWorker = threadsPerWorker }
    }

    public init(coordinator: Endpoints, runDirectory: String, checkpointDirectory: String?, hosts: [Host], timing: ProtocolTiming?) {
        self.coordinator = coordinator; self.runDirectory = runDirectory; self.checkpointDirectory = checkpointDirectory
        self.hosts = hosts; self.timing = timing
    }

    public var coordinator: Endpoints
    public var runDirectory: String
    public var checkpointDirectory: String?
    public var hosts: [Host]
    public var timing: ProtocolTiming?

    enum CodingKeys: String, CodingKey {
        case coordinator, runDirectory = "run_directory", checkpointDirectory = "checkpoint_directory", hosts, timing
    }

    /// Reads and checks cluster.json; relative directories resolve against its folder.
    public static func load(_ url: URL) throws -> ClusterConfig {
        let data: Data
        do { data = try Data(contentsOf: url) } catch { throw CoordinatorError("\(url.path): cannot read: \(error.localizedDescription)") }
        var config: ClusterConfig
        do { config = try JSONDecoder().decode(ClusterConfig.self, from: data) } catch let e as DecodingError {
            throw CoordinatorError("\(url.path): \(e.shortDescription)")
        } catch {
            throw CoordinatorError("\(url.path): \(error)")
        }
        for (i, h) in config.hosts.enumerated() where h.workers < 0 || (h.threadsPerWorker ?? 1) < 1 {
            throw CoordinatorError("\(url.path): hosts[\(i)]: workers must be ≥ 0 and threads_per_worker ≥ 1")
        }
        let base = url.deletingLastPathComponent()
        func absolute(_ path: String) -> String { path.hasPrefix("/") ? path : base.appendingPathComponent(path).standardizedFileURL.path }
        config.runDirectory = absolute(config.runDirectory)
        config.checkpointDirectory = config.checkpointDirectory.map(absolute)
        return config
    }
}
