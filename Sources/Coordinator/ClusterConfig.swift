// ClusterConfig: cluster.json — where the coordinator binds, where workers
// connect, the run and checkpoint directories, the hosts and their workers,
// the protocol's timing and the CURVE key files.
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
        /// Each worker's `--model-cache-mib` (scripts/cluster-up.sh); absent, each takes the default from its limits.
        public var modelCacheMib: Int?
        enum CodingKeys: String, CodingKey {
            case host, workers, threadsPerWorker = "threads_per_worker", modelCacheMib = "model_cache_mib"
        }
        public init(host: String, workers: Int, threadsPerWorker: Int?, modelCacheMib: Int? = nil) {
            self.host = host; self.workers = workers; self.threadsPerWorker = threadsPerWorker; self.modelCacheMib = modelCacheMib
        }
    }

    /// Key files (docs/security.md); paths relative to cluster.json's folder. Each host reads only its own part.
    public struct Security: Codable, Sendable {
        /// The coordinator's host: its key pair (`factsweep keys create coordinator`).
        public var coordinatorKey: String?
        /// The coordinator's host: the worker public keys it admits (`factsweep keys allow`).
        public var allowList: String?
        /// Every worker host: the coordinator's public key, a `.pub` file or the Z85 key itself.
        public var coordinatorPublicKey: String?
        /// Every worker host: that host's own key pair, at the same path on each host.
        public var workerKey: String?
        enum CodingKeys: String, CodingKey {
            case coordinatorKey = "coordinator_key", allowList = "allow_list"
            case coordinatorPublicKey = "coordinator_public_key", workerKey = "worker_key"
        }
        public init(coordinatorKey: String? = nil, allowList: String? = nil, coordinatorPublicKey: String? = nil, workerKey: String? = nil) {
            self.coordinatorKey = coordinatorKey; self.allowList = allowList
            self.coordinatorPublicKey = coordinatorPublicKey; self.workerKey = workerKey
        }
    }

    public init(coordinator: Endpoints, runDirectory: String, checkpointDirectory: String?, hosts: [Host], timing: ProtocolTiming?,
                security: Security? = nil) {
        self.coordinator = coordinator; self.runDirectory = runDirectory; self.checkpointDirectory = checkpointDirectory
        self.hosts = hosts; self.timing = timing; self.security = security
    }

    public var coordinator: Endpoints
    public var runDirectory: String
    public var checkpointDirectory: String?
    public var hosts: [Host]
    public var timing: ProtocolTiming?
    public var security: Security?

    enum CodingKeys: String, CodingKey {
        case coordinator, runDirectory = "run_directory", checkpointDirectory = "checkpoint_directory", hosts, timing, security
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
        // The same rules as scripts/cluster-settings.py, which starts the hosts' workers from this file.
        for (i, h) in config.hosts.enumerated() {
            if h.host.isEmpty || h.host.unicodeScalars.contains(where: { $0.properties.isWhitespace || $0.properties.generalCategory == .control }) {
                throw CoordinatorError("\(url.path): hosts[\(i)]: \"\(h.host)\" is not a host name")
            }
            if h.workers < 0 || !Message.threadCounts.contains(h.threadsPerWorker ?? 1) || (h.modelCacheMib ?? 0) < 0 {
                throw CoordinatorError("\(url.path): hosts[\(i)]: workers must be ≥ 0, threads_per_worker from 1 to "
                                       + "\(Message.maxThreads) and model_cache_mib ≥ 0")
            }
        }
        let base = url.deletingLastPathComponent()
        func absolute(_ path: String) -> String { path.hasPrefix("/") ? path : base.appendingPathComponent(path).standardizedFileURL.path }
        config.runDirectory = absolute(config.runDirectory)
        config.checkpointDirectory = config.checkpointDirectory.map(absolute)
        if var security = config.security {
            security.coordinatorKey = security.coordinatorKey.map(absolute)
            security.allowList = security.allowList.map(absolute)
            security.workerKey = security.workerKey.map(absolute)
            // The coordinator's public key may be given inline (Z85) instead of as a file.
            security.coordinatorPublicKey = security.coordinatorPublicKey.map { (try? Curve.checkedKey($0, what: "key")) ?? absolute($0) }
            config.security = security
        }
        return config
    }
}
