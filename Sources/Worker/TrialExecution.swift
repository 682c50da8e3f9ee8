// TrialExecution: the training thread's side of one assignment — put the
// resume checkpoint in the trial's directory, run the TrialRunner (the
// `factsweep train` code path) and turn its events into TrialOutputs for the
// socket thread. Nothing here touches a socket.
import Core
import Foundation
import Logging
import Protocol
import Trial

/// Runs one assigned attempt on a thread of its own.
struct TrialExecution: Sendable {
    let assign: Message.Assign
    let runner: any TrialRunning
    /// The attempt's local directory, `<checkpoint directory>/<trial>/attempt-<id>`: each attempt writes its
    /// own checkpoint files, so that one attempt's checkpoint never overwrites the file another attempt's
    /// (or the store's) epoch refers to.
    let directory: URL
    let sharedCheckpoints: Bool
    let inlineLimit: Int
    let logger: Logger

    /// Starts the attempt on a new thread; `trial` learns its progress and its end.
    func start(reporting trial: RunningTrial) {
        let thread = Thread { self.run(reporting: trial) }
        thread.name = "trial \(assign.trial) attempt \(assign.attempt)"
        thread.start()
    }

    func run(reporting trial: RunningTrial) {
        do {
            let config = assign.config
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            // The attempt's directory is `<checkpoint directory>/<trial>/attempt-<id>`: resume paths must lie in
            // the checkpoint directory.
            let root = directory.deletingLastPathComponent().deletingLastPathComponent()
            let resume = try assign.resume.map {
                try ResumeCheckpoint.materialise($0, in: directory, confinedTo: root, runner: runner)
            } != nil
            let summary = try runner.run(config, directory: directory, resume: resume, events: events(trial))
            trial.finish(.finished(summary))
        } catch let error as ResumeEpochMismatch {
            // Never train on from another state than the store's: hand the trial back and let the
            // coordinator forget this checkpoint (the next attempt starts from scratch).
            logger.error("resume checkpoint refused", metadata: ["trial": "\(assign.trial)", "attempt": "\(assign.attempt)",
                                                                "error": "\(error)"])
            trial.finish(.failed(reason: "\(error)", kind: .interrupted, refusedCheckpoint: error.assigned))
        } catch {
            let kind = Message.Failed.Kind.classifying(error)
            logger.error("trial failed", metadata: ["trial": "\(assign.trial)", "attempt": "\(assign.attempt)",
                                                   "kind": "\(kind.rawValue)", "error": "\(error)"])
            trial.finish(.failed(reason: "\(error)", kind: kind, refusedCheckpoint: nil))
        }
    }

    private func events(_ trial: RunningTrial) -> TrialEvents {
        var events = TrialEvents()
        let recorded = assign.epochsRecorded
        let location = CheckpointLocation(shared: sharedCheckpoints, inlineLimit: inlineLimit, logger: logger)
        events.started = { _, completed in trial.completed(epoch: completed) }
        events.step = { epoch, step in trial.publish(epoch: epoch, step: step) }
        events.phase = { trial.publish(phase: $0) }
        events.epoch = { report in
            trial.completed(epoch: report.epoch)
            // The store has these epochs from an earlier attempt already. Epoch 0 (the base model) is
            // evaluated only by an attempt starting from scratch, and the store keeps the first one sent.
            guard report.epoch > recorded || report.epoch == 0 else { return }
            trial.post(.progress(report))
        }
        events.checkpoint = { epoch, directory in
            if let reference = location.reference(epoch: epoch, directory: directory) { trial.post(.checkpoint(reference)) }
        }
        events.shouldStop = { trial.stopRequested }
        return events
    }
}

/// How a checkpoint written by this worker is announced.
struct CheckpointLocation: Sendable {
    let shared: Bool
    let inlineLimit: Int
    let logger: Logger

    /// A path when the directory is shared, else the bytes when small enough; nil (logged) when neither.
    /// Read here, on the training thread, so that the bytes are this epoch's, not a later checkpoint's; and
    /// a path names a file of this epoch's own (a hard link), which the next checkpoint does not replace.
    func reference(epoch: Int, directory: URL) -> CheckpointRef? {
        let file = directory.appendingPathComponent(TrainingCheckpoint.fileName)
        if shared {
            do {
                return .init(epoch: epoch, location: .path(try CheckpointFiles.keep(file, epoch: epoch).path))
            } catch {
                logger.warning("cannot keep a file for this checkpoint's epoch; announcing the attempt's file",
                               metadata: ["file": "\(file.path)", "error": "\(error)"])
                return .init(epoch: epoch, location: .path(file.path))
            }
        }
        do {
            let size = try FileManager.default.attributesOfItem(atPath: file.path)[.size] as? Int ?? Int.max
            guard size <= inlineLimit else {
                logger.warning("checkpoint too large to send inline and the checkpoint directory is not shared; not announced",
                               metadata: ["file": "\(file.path)", "bytes": "\(size)", "limit": "\(inlineLimit)"])
                return nil
            }
            return .init(epoch: epoch, location: .inline(try Data(contentsOf: file)))
        } catch {
            logger.warning("cannot read the checkpoint to send it inline", metadata: ["file": "\(file.path)", "error": "\(error)"])
            return nil
        }
    }
}

/// An attempt's checkpoint of each epoch, kept as `epoch-<N>.safetensors` beside the `checkpoint.safetensors`
/// the trainer rewrites at every checkpoint: the path the store records must hold that epoch's state until
/// a later checkpoint is recorded, or a trial requeued to it finds a later epoch there (and restarts from
/// scratch). Hard links: no copy, and the trainer's atomic rewrite gives the next checkpoint a new file.
enum CheckpointFiles {
    static let prefix = "epoch-", suffix = ".safetensors"

    /// Links `file` as this epoch's file in its directory; its path.
    static func keep(_ file: URL, epoch: Int) throws -> URL {
        let kept = file.deletingLastPathComponent().appendingPathComponent("\(prefix)\(epoch)\(suffix)")
        unlink(kept.path)
        guard link(file.path, kept.path) == 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
        return kept
    }

    /// Removes the epoch files before `epoch` in `directory`: the store has recorded the checkpoint of
    /// `epoch`, and a requeue never goes back beyond the newest recorded checkpoint.
    static func prune(before epoch: Int, in directory: URL) {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory.path) else { return }
        for name in names where name.hasPrefix(prefix) && name.hasSuffix(suffix) {
            guard let kept = Int(name.dropFirst(prefix.count).dropLast(suffix.count)), kept < epoch else { continue }
            unlink(directory.appendingPathComponent(name).path)
        }
    }
}

/// Puts an assignment's resume checkpoint where the TrialRunner looks for it.
enum ResumeCheckpoint {
    /// `materialise`, then checks that the file holds the epoch the assignment names: a checkpoint out of
    /// step with the store (overwritten by a later attempt, or an older one left in place) is refused.
    static func materialise(_ reference: CheckpointRef, in directory: URL, confinedTo root: URL,
                            runner: any TrialRunning) throws {
        try materialise(reference, in: directory, confinedTo: root)
        let file = directory.appendingPathComponent(TrainingCheckpoint.fileName).path
        let found = try runner.checkpointEpoch(in: directory)
        guard found == reference.epoch else {
            let source = switch reference.location {
            case .path(let path): path
            case .inline(let bytes): "\(bytes.count) bytes sent inline"
            }
            throw ResumeEpochMismatch(file: file, source: source, found: found, assigned: reference.epoch)
        }
    }

    /// Writes an inline checkpoint, or copies a path's, to `directory/checkpoint.safetensors` unless it is
    /// that file already. A path may name the file or the directory holding it, inside `root` (symlinks
    /// resolved): another is refused unread (`CheckpointConfinement`).
    static func materialise(_ reference: CheckpointRef, in directory: URL, confinedTo root: URL) throws {
        let target = directory.appendingPathComponent(TrainingCheckpoint.fileName).standardizedFileURL
        switch reference.location {
        case .inline(let bytes):
            try bytes.write(to: target, options: .atomic)
        case .path(let path):
            if let problem = CheckpointConfinement.problem(path, in: CheckpointConfinement.resolved(root)) {
                throw ResumeCheckpointOutside(reason: problem)
            }
            var source = CheckpointConfinement.resolvedFile(path)
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: source.path, isDirectory: &isDirectory) else {
                throw ResumeCheckpointMissing(path: path)
            }
            if isDirectory.boolValue { source = source.appendingPathComponent(TrainingCheckpoint.fileName) }
            guard source.resolvingSymlinksInPath() != target.resolvingSymlinksInPath() else { return }
            // Copy beside the target, then swap it in, so a crash never leaves half a checkpoint.
            let partial = directory.appendingPathComponent(TrainingCheckpoint.fileName + ".partial")
            try? FileManager.default.removeItem(at: partial)
            try FileManager.default.copyItem(at: source, to: partial)
            guard rename(partial.path, target.path) == 0 else {
                throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO)
            }
        }
    }
}

/// The resume checkpoint does not hold the epoch the assignment names.
struct ResumeEpochMismatch: Error, CustomStringConvertible {
    let file: String
    /// Where it came from: the assignment's path, or inline bytes.
    let source: String
    let found: Int?
    let assigned: Int

    var description: String {
        "resume checkpoint \(file) (from \(source)) holds \(found.map { "epoch \($0)" } ?? "no checkpoint"), "
            + "but the assignment resumes from epoch \(assigned)"
    }
}

/// The assignment's resume path does not exist on this host.
struct ResumeCheckpointMissing: Error, CustomStringConvertible {
    let path: String
    var description: String { "resume checkpoint \(path) does not exist on this host" }
}

/// The assignment's resume path lies outside this worker's checkpoint directory: it is not read.
struct ResumeCheckpointOutside: Error, CustomStringConvertible {
    let reason: String
    var description: String { "resume refused: \(reason)" }
}

extension Message.Failed.Kind {
    /// Whether another attempt, perhaps on another host, may succeed where this one failed. A file that is
    /// missing, unreadable or malformed (model, tokenizer, data), a configuration that cannot run, and a
    /// full or read-only disk here are `permanent`: the trial fails at once with the reason. Anything
    /// else — a resume checkpoint missing on this host, an error nobody foresaw — is an `error` of the
    /// trial, retried (after a back-off) until the retry limit.
    static func classifying(_ error: any Error) -> Self {
        switch error {
        case is MethodError, is ModelConfigurationError, is DatasetError, is DecodingError, is LoadError:
            return .permanent
        case is ResumeCheckpointMissing:
            return .error
        case let error as CocoaError where Self.permanentFileErrors.contains(error.code):
            return .permanent
        case let error as POSIXError where Self.permanentErrnos.contains(error.code):
            return .permanent
        default:
            return .error
        }
    }

    private static let permanentFileErrors: Set<CocoaError.Code> = [
        .fileNoSuchFile, .fileReadNoSuchFile, .fileReadNoPermission, .fileReadCorruptFile, .fileWriteOutOfSpace,
        .fileWriteNoPermission, .fileWriteVolumeReadOnly,
    ]
    private static let permanentErrnos: Set<POSIXErrorCode> = [.ENOENT, .EACCES, .ENOSPC, .EDQUOT, .EROFS]
}
