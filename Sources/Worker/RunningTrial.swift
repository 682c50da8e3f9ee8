// RunningTrial: what the training thread and the socket thread share about
// the one attempt a worker runs — its position for heartbeats, the stop
// request, and the queue of results the socket thread turns into messages.
// The socket never leaves its thread; only this object crosses.
import Foundation
import Protocol
import Trial

/// A result of the training thread, numbered and sent by the socket thread.
enum TrialOutput: Sendable, Equatable {
    case progress(EpochReport)
    case checkpoint(CheckpointRef)
    /// The run returned (done, diverged or stopped on request: see the summary's outcome).
    case finished(TrialSummary)
    /// `refusedCheckpoint`: the epoch of a resume checkpoint that did not hold it (the coordinator forgets it).
    case failed(reason: String, kind: Message.Failed.Kind, refusedCheckpoint: Int?)
}

/// Why the socket thread asked the trial to stop.
enum StopRequest: Sendable, Equatable {
    /// SIGTERM/SIGINT: checkpoint, report the checkpoint, then `failed(kind: interrupted, reason)`.
    case released(reason: String)
    /// `cancel`, `drop` or `shutdown`: stop and report nothing more.
    case silenced(reason: String)
}

/// One attempt, shared by its training thread and the socket thread; thread-safe.
final class RunningTrial: @unchecked Sendable {
    let trial: TrialKey
    let attempt: AttemptID

    private let condition = NSCondition()
    private var epoch = 0, step = 0
    private var phase = TrialPhase.loading
    private var lastEpoch = 0
    private var stop: StopRequest?
    private var outputs: [TrialOutput] = []
    private var finished = false

    /// Rung when an output is posted, so that the socket thread sends it at once.
    private let wakeup: Wakeup?

    init(trial: TrialKey, attempt: AttemptID, lastEpoch: Int = 0, wakeup: Wakeup? = nil) {
        self.trial = trial; self.attempt = attempt; self.lastEpoch = lastEpoch; self.wakeup = wakeup
        epoch = lastEpoch + 1
    }

    private func locked<T>(_ body: () -> T) -> T {
        condition.lock()
        defer { condition.unlock() }
        return body()
    }

    // MARK: Training thread

    /// Where training is: after every optimizer step.
    func publish(epoch: Int, step: Int) { locked { self.epoch = epoch; self.step = step } }

    /// What the attempt is doing: heartbeats carry it, so a slow evaluation keeps its lease.
    func publish(phase: TrialPhase) { locked { self.phase = phase } }

    /// An epoch is finished (or, at a resume, was finished before).
    func completed(epoch: Int) {
        locked {
            lastEpoch = max(lastEpoch, epoch)
            if self.epoch <= epoch { self.epoch = epoch + 1; step = 0 }
        }
    }

    var stopRequested: Bool { locked { stop != nil } }

    func post(_ output: TrialOutput) {
        locked { outputs.append(output) }
        wakeup?.ring()
    }

    /// The training thread's last word: its final output, after which it touches nothing.
    func finish(_ output: TrialOutput) {
        locked {
            outputs.append(output)
            finished = true
            condition.broadcast()
        }
        wakeup?.ring()
    }

    // MARK: Socket thread

    /// Outputs posted since the last call, and whether the training thread has ended (atomically, so
    /// that an ended trial's outputs are all in hand).
    func take() -> (outputs: [TrialOutput], finished: Bool) {
        locked {
            defer { outputs.removeAll() }
            return (outputs, finished)
        }
    }

    /// Asks the trial to stop after its epoch; a later request does not replace the first, except that
    /// silencing wins over a release (a dropped attempt reports nothing, released or not).
    func requestStop(_ request: StopRequest) {
        locked {
            switch (stop, request) {
            case (nil, _), (.released, .silenced): stop = request
            case (.released, .released), (.silenced, _): break
            }
        }
    }

    var stopRequest: StopRequest? { locked { stop } }

    /// Whether results of this attempt are still wanted.
    var isSilenced: Bool {
        if case .silenced = stopRequest { return true }
        return false
    }

    var activity: Message.Activity { locked { .init(trial: trial, attempt: attempt, epoch: epoch, step: step, phase: phase) } }

    var held: Message.HeldAttempt { locked { .init(trial: trial, attempt: attempt, lastEpoch: lastEpoch) } }

    /// Waits up to `timeout` for the training thread to end; whether it did.
    func waitUntilFinished(timeout: Duration) -> Bool {
        let deadline = Date(timeIntervalSinceNow: timeout.seconds)
        condition.lock()
        defer { condition.unlock() }
        while !finished {
            if !condition.wait(until: deadline) { return finished }
        }
        return true
    }
}

/// A pipe that other threads write a byte to so that the socket thread, waiting in `zmq_poll` on the
/// DEALER and on this pipe, wakes at once — instead of waking every few milliseconds to look.
final class Wakeup: @unchecked Sendable {
    /// What the socket thread polls.
    let descriptor: Int32
    private let writeEnd: Int32

    /// Nil when the process cannot have another pipe; the socket thread then polls.
    init?() {
        var ends: [Int32] = [0, 0]
        guard pipe(&ends) == 0 else { return nil }
        for end in ends { _ = fcntl(end, F_SETFL, fcntl(end, F_GETFL) | O_NONBLOCK) }
        descriptor = ends[0]
        writeEnd = ends[1]
    }

    /// Wakes the socket thread (a full pipe means it is woken already).
    func ring() {
        var byte: UInt8 = 1
        _ = write(writeEnd, &byte, 1)
    }

    /// Empties the pipe: call before looking at what the ringing was about, so no ring is lost.
    func reset() {
        var buffer = [UInt8](repeating: 0, count: 64)
        while read(descriptor, &buffer, buffer.count) > 0 {}
    }

    deinit {
        close(descriptor)
        close(writeEnd)
    }
}
