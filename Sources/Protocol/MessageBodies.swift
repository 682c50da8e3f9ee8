// MessageBodies: the fields of each message (frame 2), with their wire names
// beside the Swift ones. docs/protocol.md lists who sends what.
import Foundation
import Trial

extension Message {
    /// Worker → coordinator, first on every connection: who it is and what it still runs.
    public struct Hello: Codable, Sendable, Equatable {
        public var workerID: String
        /// Random per process start; message ids are unique within it.
        public var session: String
        public var host: String
        public var pid: Int32
        public var threads: Int
        public var protocolVersion: Int
        /// Models this worker has on hand, as the sweep names them.
        public var models: [String]
        /// The same models with the storage each is loaded in; absent from older workers, whose trials
        /// are then claimed by path alone.
        public var modelStorages: [ModelStorage]?
        /// Attempts this worker is still running, re-announced after a reconnect.
        public var held: [HeldAttempt]
        /// The Slurm job this worker runs in, when it does; absent otherwise (and from older workers).
        public var slurm: SlurmTask?

        public init(workerID: String, session: String, host: String, pid: Int32, threads: Int,
                    protocolVersion: Int = ProtocolVersion.current, models: [String] = [],
                    modelStorages: [ModelStorage]? = nil, held: [HeldAttempt] = [], slurm: SlurmTask? = nil) {
            self.workerID = workerID; self.session = session; self.host = host; self.pid = pid; self.threads = threads
            self.protocolVersion = protocolVersion; self.models = models; self.modelStorages = modelStorages
            self.held = held; self.slurm = slurm
        }

        enum CodingKeys: String, CodingKey {
            case workerID = "worker_id", session, host, pid, threads, protocolVersion = "protocol_version", models,
                 modelStorages = "model_storages", held, slurm
        }
    }

    /// A model a worker has loaded, and in which storage: one file may be held as Float32 for full
    /// fine-tuning and f32 LoRA, as bf16 for bf16 LoRA and IA³, and as NF4 for QLoRA
    /// (`LinearStorage.training`), and a trial in another storage than the one held loads the file again.
    public struct ModelStorage: Codable, Sendable, Equatable, Hashable {
        public var model: String
        public var storage: LinearStorage

        public init(model: String, storage: LinearStorage) { self.model = model; self.storage = storage }

        /// The paths `storages` name, each once, sorted: the `models` list that goes beside them.
        public static func paths(_ storages: [ModelStorage]) -> [String] { Set(storages.map(\.model)).sorted() }
    }

    /// A Slurm job (array task) as `squeue` names it: `jobID` is the array's job id for an array task
    /// (`SLURM_ARRAY_JOB_ID`), so that `<jobID>_<arrayTaskID>` is the JOBID column.
    public struct SlurmTask: Codable, Sendable, Equatable {
        public var jobID: String
        public var arrayTaskID: Int?

        public init(jobID: String, arrayTaskID: Int? = nil) { self.jobID = jobID; self.arrayTaskID = arrayTaskID }

        enum CodingKeys: String, CodingKey { case jobID = "job_id", arrayTaskID = "array_task_id" }

        /// `123_4` for an array task, `123` for a plain job.
        public var squeueID: String { arrayTaskID.map { "\(jobID)_\($0)" } ?? jobID }
    }

    /// An attempt a worker holds, and the last epoch it finished.
    public struct HeldAttempt: Codable, Sendable, Equatable {
        public var trial: TrialKey
        public var attempt: AttemptID
        public var lastEpoch: Int

        public init(trial: TrialKey, attempt: AttemptID, lastEpoch: Int) {
            self.trial = trial; self.attempt = attempt; self.lastEpoch = lastEpoch
        }

        enum CodingKeys: String, CodingKey { case trial, attempt, lastEpoch = "last_epoch" }
    }

    /// Worker → coordinator: it can start this many more trials now.
    public struct Ready: Codable, Sendable, Equatable {
        public var freeSlots: Int
        /// The models the worker has on hand now, as in `hello`; absent (an older worker), the coordinator
        /// keeps the list it has. The hello's list goes stale once the worker's cache drops a model or loads
        /// another, and the coordinator claims trials on these models first.
        public var models: [String]?
        /// The same models with their storages, as in `hello`; absent, the coordinator keeps the list it has,
        /// unless `models` is present (paths without storages leave none).
        public var modelStorages: [ModelStorage]?

        public init(freeSlots: Int, models: [String]? = nil, modelStorages: [ModelStorage]? = nil) {
            self.freeSlots = freeSlots; self.models = models; self.modelStorages = modelStorages
        }

        enum CodingKeys: String, CodingKey { case freeSlots = "free_slots", models, modelStorages = "model_storages" }
    }

    /// Worker → coordinator, once per finished epoch: its measurements (and
    /// at evaluation epochs every answer), as the trainer reported them.
    public struct Progress: Codable, Sendable, Equatable {
        public var messageID: MessageID
        public var trial: TrialKey
        public var attempt: AttemptID
        public var report: EpochReport

        public init(messageID: MessageID, trial: TrialKey, attempt: AttemptID, report: EpochReport) {
            self.messageID = messageID; self.trial = trial; self.attempt = attempt; self.report = report
        }

        /// The epoch reported.
        public var epoch: Int { report.epoch }

        enum CodingKeys: String, CodingKey { case messageID = "message_id", trial, attempt, report }
    }

    /// Worker → coordinator: a checkpoint was written.
    public struct Checkpoint: Codable, Sendable, Equatable {
        public var messageID: MessageID
        public var trial: TrialKey
        public var attempt: AttemptID
        public var checkpoint: CheckpointRef

        public init(messageID: MessageID, trial: TrialKey, attempt: AttemptID, checkpoint: CheckpointRef) {
            self.messageID = messageID; self.trial = trial; self.attempt = attempt; self.checkpoint = checkpoint
        }

        enum CodingKeys: String, CodingKey { case messageID = "message_id", trial, attempt, checkpoint }
    }

    /// Worker → coordinator: the trial finished (a diverged run is a result too).
    public struct Done: Codable, Sendable, Equatable {
        public var messageID: MessageID
        public var trial: TrialKey
        public var attempt: AttemptID
        public var summary: TrialSummary

        public init(messageID: MessageID, trial: TrialKey, attempt: AttemptID, summary: TrialSummary) {
            self.messageID = messageID; self.trial = trial; self.attempt = attempt; self.summary = summary
        }

        enum CodingKeys: String, CodingKey { case messageID = "message_id", trial, attempt, summary }
    }

    /// Worker → coordinator: the attempt stopped without a result.
    public struct Failed: Codable, Sendable, Equatable {
        public var messageID: MessageID
        public var trial: TrialKey
        public var attempt: AttemptID
        public var reason: String
        /// Whether another attempt (elsewhere) may succeed; false for `kind` `permanent`.
        public var retryable: Bool
        /// The worker's classification; absent from older workers (then `retryable` decides, and a
        /// retryable failure is an `error`). The coordinator trusts it only to narrow: `permanent` (or
        /// `retryable: false`) fails the trial at once, but `interrupted` never spares an attempt that made
        /// no progress from counting against the retry limit.
        public var kind: Kind?
        /// The epoch of the assignment's resume checkpoint when the file did not hold that epoch: the
        /// coordinator forgets that checkpoint, and the next attempt starts from scratch (sending only the
        /// epochs the store lacks). Absent otherwise.
        public var refusedCheckpoint: Int?
        /// The members of the `assign` this worker's build does not read (up to eight, each cut to 80 bytes and marked `…`):
        /// the worker refused to run it (version 4) and may never run it until rebuilt. The coordinator then
        /// offers the trial to other workers without counting the attempt (docs/protocol.md). Absent
        /// otherwise, and from workers built before it; an older coordinator skips it.
        public var unreadSettings: [String]?

        /// Why an attempt stopped without a result.
        public enum Kind: String, Codable, Sendable, CaseIterable {
            /// Stopped from outside (SIGTERM, preemption, a release, an assignment refused while busy):
            /// counted against the retry limit only if it made no progress.
            case interrupted
            /// The trial raised an error another attempt may not repeat: counted, retried after a back-off.
            case error
            /// Cannot succeed on retry (a missing or unreadable model or data file, a bad configuration, a
            /// full disk): the trial fails at once.
            case permanent
        }

        public init(messageID: MessageID, trial: TrialKey, attempt: AttemptID, reason: String, kind: Kind,
                    refusedCheckpoint: Int? = nil, unreadSettings: [String]? = nil) {
            self.messageID = messageID; self.trial = trial; self.attempt = attempt; self.reason = reason
            self.retryable = kind != .permanent; self.kind = kind; self.refusedCheckpoint = refusedCheckpoint
            self.unreadSettings = unreadSettings
        }

        /// Whether the worker refused the assignment for members its build does not read: a retryable
        /// `error` naming at least one. (A `permanent` failure stays permanent whatever it names.)
        public var refusedUnreadSettings: Bool {
            effectiveKind == .error && !(unreadSettings ?? []).isEmpty
        }

        /// An older worker's message, without `kind`.
        public init(messageID: MessageID, trial: TrialKey, attempt: AttemptID, reason: String, retryable: Bool) {
            self.messageID = messageID; self.trial = trial; self.attempt = attempt; self.reason = reason
            self.retryable = retryable; kind = nil
        }

        /// The kind the coordinator acts on: the narrower of `retryable` and `kind`.
        public var effectiveKind: Kind {
            if !retryable || kind == .permanent { return .permanent }
            return kind ?? .error
        }

        enum CodingKeys: String, CodingKey { case messageID = "message_id", trial, attempt, reason, retryable, kind
            case refusedCheckpoint = "refused_checkpoint", unreadSettings = "unread_settings"
        }
    }

    /// Either way, every `ProtocolTiming.heartbeatInterval`: alive, where each attempt is, and (from a
    /// worker) how many more trials it could start now.
    public struct Heartbeat: Codable, Sendable, Equatable {
        /// Empty from the coordinator and from an idle worker.
        public var running: [Activity]
        /// A worker's free slots, as its `ready` would say: the coordinator reconciles them with what it
        /// believes (a lost `ready` or `assign` would otherwise leave the worker idle for ever). Absent from
        /// the coordinator and from older workers.
        public var freeSlots: Int?

        public init(running: [Activity] = [], freeSlots: Int? = nil) { self.running = running; self.freeSlots = freeSlots }

        enum CodingKeys: String, CodingKey { case running, freeSlots = "free_slots" }
    }

    /// Where one attempt is. In the `training` phase its lease is renewed while `(epoch, step)` advances;
    /// in any other phase (evaluation, checkpoint copy, export …) by the heartbeat itself.
    public struct Activity: Codable, Sendable, Equatable {
        public var trial: TrialKey
        public var attempt: AttemptID
        public var epoch: Int
        public var step: Int
        /// nil from older workers: treated as `training`.
        public var phase: TrialPhase?

        public init(trial: TrialKey, attempt: AttemptID, epoch: Int, step: Int, phase: TrialPhase? = nil) {
            self.trial = trial; self.attempt = attempt; self.epoch = epoch; self.step = step; self.phase = phase
        }
    }

    /// Coordinator → worker: run this attempt of a trial.
    public struct Assign: Codable, Sendable, Equatable {
        public var trial: TrialKey
        public var attempt: AttemptID
        /// Everything that decides the trial's result.
        public var config: TrialConfig
        /// nil: start from scratch.
        public var resume: CheckpointRef?
        /// Epochs the store already has; the worker does not send them again.
        public var epochsRecorded: Int
        /// Not sent: the members of the received body this build did not read
        /// (`config.training.precision` to a build from before that setting),
        /// set by `Message.decode`. A worker refuses an assign that has any
        /// (protocol version 4) rather than run another trial than the one asked.
        public var unknownFields: [String] = []

        public init(trial: TrialKey, attempt: AttemptID, config: TrialConfig, resume: CheckpointRef? = nil,
                    epochsRecorded: Int = 0) {
            self.trial = trial; self.attempt = attempt; self.config = config; self.resume = resume
            self.epochsRecorded = epochsRecorded
        }

        enum CodingKeys: String, CodingKey {
            case trial, attempt, config, resume, epochsRecorded = "epochs_recorded"
        }
    }

    /// Coordinator → worker: these result messages are applied; stop resending them.
    public struct Ack: Codable, Sendable, Equatable {
        public var messageIDs: [MessageID]

        public init(messageIDs: [MessageID]) { self.messageIDs = messageIDs }

        enum CodingKeys: String, CodingKey { case messageIDs = "message_ids" }
    }

    /// Coordinator → worker: stop the trial (whatever attempt) and report nothing more for it.
    public struct Cancel: Codable, Sendable, Equatable {
        public var trial: TrialKey

        public init(trial: TrialKey) { self.trial = trial }
    }

    /// Coordinator → worker: this attempt is stale (fenced by a newer one); stop it and forget it.
    public struct Drop: Codable, Sendable, Equatable {
        public var trial: TrialKey
        public var attempt: AttemptID
        public var reason: String

        public init(trial: TrialKey, attempt: AttemptID, reason: String) {
            self.trial = trial; self.attempt = attempt; self.reason = reason
        }
    }

    /// Coordinator → worker: exit without sending anything more.
    public struct Shutdown: Codable, Sendable, Equatable {
        public var reason: String

        public init(reason: String) { self.reason = reason }
    }

    /// Either way: the last message could not be used, and why. Never answered.
    public struct ErrorReply: Codable, Sendable, Equatable {
        public var reason: String
        /// For a result refused because an epoch before it is missing (`progress` after a gap, `done` before
        /// every planned epoch): the trial and attempt it was for and the epoch the coordinator needs next.
        /// The worker resends that epoch from its outbox, or restarts the trial from its checkpoint.
        public var trial: TrialKey?
        public var attempt: AttemptID?
        public var expectedEpoch: Int?

        public init(reason: String, trial: TrialKey? = nil, attempt: AttemptID? = nil, expectedEpoch: Int? = nil) {
            self.reason = reason; self.trial = trial; self.attempt = attempt; self.expectedEpoch = expectedEpoch
        }

        enum CodingKeys: String, CodingKey { case reason, trial, attempt, expectedEpoch = "expected_epoch" }

        /// The reason prefix of the coordinator's answer to anything but hello
        /// from a worker it does not know (a restarted coordinator reached by
        /// the DEALER's automatic reconnect): the worker says hello again,
        /// announcing what it holds, and resends its unacknowledged results.
        public static let helloRequired = "hello required"

        public var asksForHello: Bool { reason.hasPrefix(Self.helloRequired) }

        /// The reason prefix of a result refused because an epoch before it is missing; `expectedEpoch` says which.
        public static let epochExpected = "epoch expected:"

        /// The reason prefix of the coordinator's refusal of a worker as a whole — its worker id is held by
        /// another live process, or bound to another key. Saying hello again cannot help: the worker prints
        /// the reason and exits.
        public static let workerRefused = "worker refused:"

        public var refusesWorker: Bool { reason.hasPrefix(Self.workerRefused) }
    }
}
