// RunStore epochs: what an attempt reports while it trains — epoch metrics
// with their evaluation's answers, and checkpoints — under the rule that only
// the attempt holding the trial writes, one epoch after another.
import Foundation
import GRDB
import Trial

extension RunTransaction {
    /// Records epoch `report.epoch` of the trial (and its evaluation's
    /// answers, if any) and renews the attempt's lease.
    ///
    /// Epoch 0, the base model's evaluation before training, is recorded
    /// once, before epoch 1, and leaves `last_epoch` (epochs trained) alone.
    ///
    /// - Returns: `.accepted`; `.duplicate` for an epoch already recorded
    ///   (a resend; the first numbers stay); `.staleAttempt` when `attemptID`
    ///   does not hold the trial; `.gap` when an epoch in between is missing.
    public func recordEpoch(_ trialKey: String, attemptID: AttemptID, report: EpochReport) throws -> AttemptWrite {
        try operation { db, now in
            let trial = try TrialState.fetch(db, key: trialKey)
            guard trial.isHeld(by: attemptID) else { return .staleAttempt(current: trial.currentAttemptID) }
            if report.epoch == 0 {
                let recorded = try Bool.fetchOne(db, sql: "SELECT EXISTS (SELECT 1 FROM epoch_metrics WHERE trial_key = ? AND epoch = 0)",
                                                 arguments: [trialKey]) ?? false
                if recorded || trial.lastEpoch > 0 { return .duplicate }
            } else {
                if report.epoch <= trial.lastEpoch { return .duplicate }
                guard report.epoch == trial.lastEpoch + 1 else { return .gap(expected: trial.lastEpoch + 1) }
            }
            let evaluation = report.evaluation
            try db.executeCached(sql: """
                INSERT INTO epoch_metrics (trial_key, epoch, loss, tokens, train_seconds, epoch_seconds, accuracy,
                    accuracy_at_threshold, key_match, perplexity, recorded_at, attempt_id)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """, arguments: [
                    trialKey, report.epoch, report.loss.isNaN ? nil : Double(report.loss), report.tokens,
                    report.trainSeconds, report.epochSeconds, evaluation.map { Double($0.accuracy) },
                    evaluation.map { Double($0.accuracyAtThreshold) }, evaluation?.keyMatch.map { Double($0) },
                    evaluation?.perplexity.map { Double($0) }, now, attemptID,
                ])
            try db.executeCached(sql: """
                UPDATE trials SET last_epoch = MAX(last_epoch, ?), epoch_high_water = MAX(epoch_high_water, ?), updated_at = ? WHERE key = ?
                """, arguments: [report.epoch, report.epoch, now, trialKey])
            try renewLease(db, attemptID: attemptID, at: now)
            if let evaluation {
                try Self.insertQuestions(db, trialKey: trialKey, epoch: report.epoch, evaluation.questions)
            }
            return .accepted
        }
    }

    /// Inserts an evaluation's answers, ignoring questions already recorded for the epoch.
    private static func insertQuestions(_ db: Database, trialKey: String, epoch: Int, _ questions: [QuestionResult]) throws {
        for question in questions {
            try db.executeCached(sql: """
                INSERT OR IGNORE INTO question_outputs
                    (trial_key, epoch, question, paraphrase, reference, answer, similarity, key_match)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                """, arguments: [trialKey, epoch, question.question, question.paraphrase, question.reference,
                                 question.answer, Double(question.similarity), question.keyMatch])
        }
    }

    /// Records the trial's newest checkpoint, which a later attempt resumes
    /// from. Its epoch must already be recorded; an older or equal checkpoint
    /// than the stored one is a duplicate.
    public func recordCheckpoint(_ trialKey: String, attemptID: AttemptID, checkpoint: CheckpointRef) throws -> AttemptWrite {
        try operation { db, now in
            let trial = try TrialState.fetch(db, key: trialKey)
            guard trial.isHeld(by: attemptID) else { return .staleAttempt(current: trial.currentAttemptID) }
            if let stored = trial.checkpointEpoch, checkpoint.epoch <= stored { return .duplicate }
            guard checkpoint.epoch <= trial.lastEpoch else { return .gap(expected: trial.lastEpoch + 1) }
            let (path, blob): (String?, Data?) = switch checkpoint.location {
            case let .path(path): (path, nil)
            case let .inline(blob): (nil, blob)
            }
            try db.executeCached(sql: """
                UPDATE trials SET checkpoint_epoch = ?, checkpoint_path = ?, checkpoint_blob = ?, updated_at = ?
                WHERE key = ?
                """, arguments: [checkpoint.epoch, path, blob, now, trialKey])
            try renewLease(db, attemptID: attemptID, at: now)
            return .accepted
        }
    }
}

extension RunTransaction {
    /// The worker of `attemptID` found that the trial's checkpoint file does not hold `epoch`, the epoch
    /// stored for it: the trial forgets that checkpoint (if it is still the stored one and the attempt still
    /// holds the trial), so that its next attempt starts from scratch rather than from a state out of step
    /// with its recorded epochs. Whether it was forgotten.
    @discardableResult
    public func discardCheckpoint(_ trialKey: String, attemptID: AttemptID, epoch: Int) throws -> Bool {
        try operation { db, now in
            let trial = try TrialState.fetch(db, key: trialKey)
            guard trial.isHeld(by: attemptID), trial.checkpointEpoch == epoch else { return false }
            try db.executeCached(sql: """
                UPDATE trials SET checkpoint_epoch = NULL, checkpoint_path = NULL, checkpoint_blob = NULL, updated_at = ?
                WHERE key = ?
                """, arguments: [now, trialKey])
            try RunStore.logEvent(db, at: now, kind: "checkpoint-discarded", trialKey: trialKey,
                                  detail: "attempt \(attemptID): the file does not hold epoch \(epoch); the next attempt starts from scratch")
            return true
        }
    }
}

extension RunStore {
    /// `RunTransaction.recordEpoch` as one transaction.
    public func recordEpoch(_ trialKey: String, attemptID: AttemptID, report: EpochReport) throws -> AttemptWrite {
        try write { try $0.recordEpoch(trialKey, attemptID: attemptID, report: report) }
    }

    /// `RunTransaction.recordCheckpoint` as one transaction.
    public func recordCheckpoint(_ trialKey: String, attemptID: AttemptID, checkpoint: CheckpointRef) throws -> AttemptWrite {
        try write { try $0.recordCheckpoint(trialKey, attemptID: attemptID, checkpoint: checkpoint) }
    }
}
