// The run database's side of stopping rules: migration v9-stopping-decisions
// keeps every trial row and allows `stopped`; a sweep keeps its rules; a
// stopped trial keeps its epochs, stores its decision, and fences its attempt.
import Foundation
import GRDB
import Testing
import TestSupport
import Trial
@testable import Store

@Suite struct StoppingStoreTests {
    @Test func migrationKeepsTrialRowsAndAllowsStopped() throws {
        let folder = try TemporaryDirectory()
        let path = folder.file("run.db").path
        let before: [Row]
        do {
            let queue = try DatabaseQueue(path: path)
            try RunSchema.migrator.migrate(queue, upTo: "v8-attempt-phase")
            before = try queue.write { db in
                try db.execute(sql: """
                    INSERT INTO sweeps (id, name, spec, created_at) VALUES (1, 'study', '{}', '2026-01-01 00:00:00.000');
                    INSERT INTO workers (id, host, pid, threads, protocol_version, connected_at, last_seen, status)
                        VALUES ('w1', 'h', 1, 1, 'FSW1', '2026-01-01 00:00:00.000', '2026-01-01 00:00:00.000', 'connected');
                    INSERT INTO trials (key, sweep_id, condition, config, model, method, lr, epochs, seed, batch_size, status,
                                        attempts, retry_limit, last_epoch, created_at, updated_at, retries_used, epoch_high_water)
                        VALUES ('k1', 1, 'lora', '{}', 'm', 'lora', 0.001, 5, 0, 1, 'running', 1, 2, 1,
                                '2026-01-01 00:00:00.000', '2026-01-01 00:00:00.000', 0, 1),
                               ('k2', 1, 'lora', '{}', 'm', 'lora', 0.001, 5, 1, 1, 'pending', 0, 2, 0,
                                '2026-01-01 00:00:00.000', '2026-01-01 00:00:00.000', 0, 0);
                    INSERT INTO attempts (attempt_id, trial_key, worker_id, started_at, lease_expires_at)
                        VALUES (7, 'k1', 'w1', '2026-01-01 00:00:00.000', '2026-01-01 00:01:00.000');
                    UPDATE trials SET current_attempt_id = 7 WHERE key = 'k1';
                    INSERT INTO epoch_metrics (trial_key, epoch, loss, train_seconds, epoch_seconds, accuracy, recorded_at, attempt_id)
                        VALUES ('k1', 1, 2.5, 1, 1, 0.4, '2026-01-01 00:00:01.000', 7);
                    """)
                return try Row.fetchAll(db, sql: "SELECT rowid, * FROM trials ORDER BY rowid")
            }
        }
        let store = try RunStore(path: path, logger: CapturedLogs().logger())
        // The columns there were then: later migrations add others (v11 `storage`).
        let columns = (before.first?.columnNames).map { Array($0).joined(separator: ", ") } ?? "rowid, *"
        let after = try store.read { db in
            (try Row.fetchAll(db, sql: "SELECT \(columns) FROM trials ORDER BY rowid"), try Row.fetchAll(db, sql: "PRAGMA foreign_key_check"),
             try String.fetchAll(db, sql: "SELECT identifier FROM grdb_migrations"),
             try String.fetchAll(db, sql: "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'trials' AND sql IS NOT NULL ORDER BY name"))
        }
        #expect(after.0 == before, "every trial row and column kept")
        #expect(after.1.isEmpty, "foreign keys hold")
        #expect(after.2.contains("v9-stopping-decisions"), "\(after.2)")
        #expect(after.3 == ["trials_by_condition", "trials_by_settings", "trials_by_status", "trials_claim_order", "trials_started_by_condition"])
        // The running trial can now stop; its epoch stays.
        let decision = StoppingDecision(rule: "target", epoch: 1, reason: "test")
        #expect(try store.write { try $0.stopTrial("k1", attemptID: 7, decision: decision) } == .accepted)
        #expect(try store.read { try String.fetchOne($0, sql: "SELECT status FROM trials WHERE key = 'k1'") } == "stopped")
        #expect(try store.stoppingDecisions() == ["k1": decision])
    }

    @Test func aStoppedTrialKeepsItsEpochsAndItsAttemptIsFenced() throws {
        let fixture = try StoreFixture()
        try fixture.announce("w1")
        let rule = StoppingRule.target(accuracy: 0.9, evaluations: 2)
        try fixture.store.addSweep(name: "study", spec: Data(#"{"name":"study"}"#.utf8),
                                   trials: [StoreSamples.trial("lora", seed: 0, epochs: 5), StoreSamples.trial("ia3", seed: 0, epochs: 5)],
                                   stopping: ["lora": rule])
        #expect(try fixture.store.stoppingRules(ofSweep: "study") == ["lora": rule])
        let claimed = try #require(try fixture.store.claimNextTrial(for: "w1"))
        let other = try #require(try fixture.store.claimNextTrial(for: "w1"))
        let lora = claimed.condition == "lora" ? claimed : other
        let ia3 = claimed.condition == "lora" ? other : claimed
        #expect(try fixture.store.write { try $0.stoppingSubject(ia3.key, attemptID: ia3.attemptID) } == nil, "no rule for ia3")
        let subject = try #require(try fixture.store.write { try $0.stoppingSubject(lora.key, attemptID: lora.attemptID) })
        #expect(subject.rule == rule && subject.condition == "lora" && subject.plannedEpochs == 5)
        #expect(try fixture.store.write { try $0.stoppingSubject(lora.key, attemptID: lora.attemptID + 100) } == nil, "another attempt")

        try fixture.recordEpochs(of: lora, through: 2)
        try fixture.recordEpochs(of: ia3, through: 2)
        let history = try fixture.store.write { try $0.recordedMetrics(of: lora.key) }
        #expect(history.map(\.epoch) == [1, 2] && history.allSatisfy { $0.loss == 1 && $0.accuracy == nil })
        let peers = try fixture.store.write {
            try $0.conditionMetrics(sweepID: subject.sweepID, condition: "lora", epoch: 2, excluding: lora.key)
        }
        #expect(peers.isEmpty, "the condition's other trials only")

        let decision = StoppingDecision(rule: "target", epoch: 2, reason: "accuracy ≥ 0.9 at epochs 1, 2 (0.91, 0.92)")
        #expect(try fixture.store.write { try $0.stopTrial(lora.key, attemptID: lora.attemptID, decision: decision) } == .accepted)
        #expect(try fixture.store.trial(lora.key)?.status == .stopped)
        #expect(try fixture.store.stoppingDecisions() == [lora.key: decision])
        // Stale from now on: a late epoch, checkpoint or verdict of the attempt changes nothing.
        #expect(try fixture.store.recordEpoch(lora.key, attemptID: lora.attemptID, report: StoreSamples.epoch(3)) == .staleAttempt(current: lora.attemptID))
        #expect(try fixture.store.finishTrial(lora.key, attemptID: lora.attemptID, result: .done) == .staleAttempt(current: lora.attemptID))
        #expect(try fixture.store.write { try $0.stopTrial(lora.key, attemptID: lora.attemptID, decision: decision) } == .staleAttempt(current: lora.attemptID))
        let rows = try fixture.store.read { db in
            (try Int.fetchAll(db, sql: "SELECT epoch FROM epoch_metrics WHERE trial_key = ? ORDER BY epoch", arguments: [lora.key]),
             try Row.fetchOne(db, sql: "SELECT outcome, reason FROM attempts WHERE attempt_id = ?", arguments: [lora.attemptID]),
             try String.fetchAll(db, sql: "SELECT kind FROM events WHERE trial_key = ? AND kind = 'trial-stopped'", arguments: [lora.key]))
        }
        #expect(rows.0 == [1, 2], "its recorded epochs stay")
        #expect(rows.1?["outcome"] == "cancelled" && (rows.1?["reason"] as String?)?.hasPrefix("stopped by the target rule at epoch 2") == true)
        #expect(rows.2.count == 1)
        let status = try fixture.store.status()
        #expect(status.trialsByStatus[.stopped] == 1 && status.conditions.first { $0.condition == "lora" }?.stopped == 1)
        #expect(try fixture.store.unfinishedTrials().unfinished == 1, "stopped is final")
        #expect(try fixture.store.audit().unfinished == 1)
    }

    @Test func theStoredRulesFollowTheSpecAndDefaultToNone() throws {
        let fixture = try StoreFixture()
        try fixture.addSweep([StoreSamples.trial("lora", seed: 0)])
        #expect(try fixture.store.stoppingRules(ofSweep: "study").isEmpty)
        try fixture.store.addSweep(name: "study", spec: Data(#"{"name":"study"}"#.utf8), trials: [StoreSamples.trial("lora", seed: 0)],
                                   stopping: ["lora": .target(accuracy: 0.5, evaluations: 1)])
        #expect(try fixture.store.stoppingRules(ofSweep: "study") == ["lora": .target(accuracy: 0.5, evaluations: 1)])
    }

    @Test func ashaPausesWithTheCheckpointPromotesToItAndStopsWhatNothingCanPromote() throws {
        let fixture = try StoreFixture()
        try fixture.announce("w1")
        let rule = StoppingRule.asha(metric: .loss, reductionFactor: 2, graceEpochs: 2, rungs: nil)
        let added = try fixture.store.addSweep(name: "study", spec: Data(#"{"name":"study"}"#.utf8),
                                   trials: [StoreSamples.trial("lora", seed: 0, epochs: 5), StoreSamples.trial("lora", seed: 1, epochs: 5)],
                                   stopping: ["lora": rule])
        let first = try #require(try fixture.store.claimNextTrial(for: "w1"))
        let second = try #require(try fixture.store.claimNextTrial(for: "w1"))
        try fixture.recordEpochs(of: first, through: 3)
        #expect(try fixture.store.recordCheckpoint(first.key, attemptID: first.attemptID,
                                                   checkpoint: CheckpointRef(epoch: 2, location: .path("c2"))) == .accepted)
        let pause = StoppingDecision(rule: "asha", epoch: 2, reason: "loss 1 at epoch 2: not in the top 0 (1/2) of 1 trials")
        #expect(try fixture.store.write { try $0.pauseTrial(first.key, attemptID: first.attemptID, decision: pause) } == .accepted)
        #expect(try fixture.store.trial(first.key)?.status == .paused)
        #expect(try fixture.store.stoppingDecisions() == [first.key: pause])
        #expect(try fixture.store.recordEpoch(first.key, attemptID: first.attemptID, report: StoreSamples.epoch(4))
                == .staleAttempt(current: first.attemptID), "the paused attempt is fenced")
        #expect(try fixture.store.unfinishedTrials().unfinished == 2, "paused is not final")
        // The second trial still runs: nothing stops the paused one yet.
        #expect(try fixture.store.write { try $0.stopUnpromotablePausedTrials() }.isEmpty)
        try fixture.recordEpochs(of: second, through: 2)
        let entries = try fixture.store.write { try $0.rungEntries(sweepID: added.sweepID, condition: "lora", epoch: 2) }
        #expect(entries.map(\.trialKey).sorted() == [first.key, second.key].sorted())
        #expect(entries.first { $0.trialKey == first.key }?.pausedAt == 2 && entries.first { $0.trialKey == second.key }?.pausedAt == nil)

        // Promoted: pending again, epoch 3 (after the checkpoint) dropped, and the next claim resumes from epoch 2.
        let promote = StoppingDecision(rule: "asha", epoch: 2, reason: "in the top 1")
        #expect(try fixture.store.write { try $0.promoteTrial(first.key, decision: promote) })
        #expect(try fixture.store.write { try $0.promoteTrial(first.key, decision: promote) } == false, "only a paused trial")
        #expect(try fixture.store.trial(first.key)?.status == .pending)
        #expect(try fixture.store.stoppingDecisions()[first.key] == nil, "a promoted trial runs on")
        let resumed = try #require(try fixture.store.claimNextTrial(for: "w1"))
        #expect(resumed.key == first.key && resumed.checkpoint?.epoch == 2 && resumed.nextEpoch == 3)
        #expect(try fixture.store.read { try Int.fetchOne($0, sql: "SELECT resumed_from_epoch FROM attempts WHERE attempt_id = ?",
                                                           arguments: [resumed.attemptID]) } == 2)

        // Now the second pauses; once the first is done, nothing of the condition runs and it ends stopped.
        #expect(try fixture.store.recordCheckpoint(second.key, attemptID: second.attemptID,
                                                   checkpoint: CheckpointRef(epoch: 2, location: .path("d2"))) == .accepted)
        #expect(try fixture.store.write { try $0.pauseTrial(second.key, attemptID: second.attemptID, decision: pause) } == .accepted)
        #expect(try fixture.store.write { try $0.stopUnpromotablePausedTrials() }.isEmpty, "the first still runs")
        try fixture.recordEpochs(of: resumed, through: 5)
        #expect(try fixture.store.finishTrial(first.key, attemptID: resumed.attemptID, result: .done) == .accepted)
        #expect(try fixture.store.write { try $0.stopUnpromotablePausedTrials() } == [second.key])
        #expect(try fixture.store.trial(second.key)?.status == .stopped)
        #expect(try fixture.store.stoppingDecisions()[second.key]?.epoch == 2)
        let actions = try fixture.store.read {
            try String.fetchAll($0, sql: "SELECT action FROM stopping_decisions ORDER BY id")
        }
        #expect(actions == ["pause", "promote", "pause", "stop"])
        #expect(try fixture.store.unfinishedTrials().unfinished == 0)
        let epochs = try fixture.store.read {
            try Int.fetchAll($0, sql: "SELECT epoch FROM epoch_metrics WHERE trial_key = ? ORDER BY epoch", arguments: [first.key])
        }
        #expect(epochs == [1, 2, 3, 4, 5], "every epoch once")
    }
}
