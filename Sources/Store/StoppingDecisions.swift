// StoppingDecisions: migration v9 — a trial the coordinator stops under the
// sweep's stopping rule ends in the new state `stopped`, its decision (rule,
// epoch, reason) kept in `stopping_decisions`, and each sweep keeps the rule
// of each condition in `sweeps.stopping` so that a restarted coordinator
// applies the one the run started with.
import GRDB

enum StoppingDecisions {
    /// `trials.status` gains `stopped` (and `paused`, for the asha rule; `stopping_decisions` holds each
    /// trial's decisions in order — pause, promote, stop): SQLite cannot change a CHECK in place, so `trials` is rebuilt
    /// (rows, row ids and every column kept; GRDB runs migrations with foreign keys off and checks them at the
    /// end, and the tables referring to `trials(key)` name it, so they still hold after the rename).
    static func migrate(_ db: Database) throws {
        try db.execute(sql: """
            ALTER TABLE sweeps ADD COLUMN stopping TEXT CHECK (stopping IS NULL OR json_valid(stopping));

            CREATE TABLE new_trials (
                key TEXT PRIMARY KEY,
                sweep_id INTEGER NOT NULL REFERENCES sweeps(id),
                condition TEXT NOT NULL,
                config TEXT NOT NULL CHECK (json_valid(config)),
                model TEXT NOT NULL,
                method TEXT NOT NULL,
                rank INTEGER,
                alpha REAL,
                lr REAL NOT NULL,
                epochs INTEGER NOT NULL,
                seed INTEGER NOT NULL,
                batch_size INTEGER NOT NULL,
                status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN
                    ('pending', 'running', 'done', 'failed', 'diverged', 'cancelled', 'stale', 'stopped', 'paused')),
                attempts INTEGER NOT NULL DEFAULT 0,
                retry_limit INTEGER NOT NULL CHECK (retry_limit >= 0),
                current_attempt_id INTEGER REFERENCES attempts(attempt_id),
                checkpoint_epoch INTEGER,
                checkpoint_path TEXT,
                checkpoint_blob BLOB,
                last_epoch INTEGER NOT NULL DEFAULT 0,
                created_at TEXT NOT NULL,
                updated_at TEXT NOT NULL,
                summary TEXT CHECK (summary IS NULL OR json_valid(summary)),
                retries_used INTEGER NOT NULL DEFAULT 0,
                not_before TEXT,
                epoch_high_water INTEGER NOT NULL DEFAULT 0,
                CHECK (checkpoint_path IS NULL OR checkpoint_blob IS NULL)
            );
            INSERT INTO new_trials (rowid, key, sweep_id, condition, config, model, method, rank, alpha, lr, epochs, seed,
                                    batch_size, status, attempts, retry_limit, current_attempt_id, checkpoint_epoch,
                                    checkpoint_path, checkpoint_blob, last_epoch, created_at, updated_at, summary,
                                    retries_used, not_before, epoch_high_water)
            SELECT rowid, key, sweep_id, condition, config, model, method, rank, alpha, lr, epochs, seed,
                   batch_size, status, attempts, retry_limit, current_attempt_id, checkpoint_epoch,
                   checkpoint_path, checkpoint_blob, last_epoch, created_at, updated_at, summary,
                   retries_used, not_before, epoch_high_water
            FROM trials;
            DROP TABLE trials;
            ALTER TABLE new_trials RENAME TO trials;
            CREATE INDEX trials_by_status ON trials(status);
            CREATE INDEX trials_by_condition ON trials(sweep_id, condition);
            CREATE INDEX trials_by_settings ON trials(method, rank, alpha, lr, epochs, batch_size, seed);
            CREATE INDEX trials_started_by_condition ON trials(sweep_id, condition, status, attempts);
            CREATE INDEX trials_claim_order ON trials(status, model, last_epoch, sweep_id, condition);

            CREATE TABLE stopping_decisions (
                id INTEGER PRIMARY KEY,
                trial_key TEXT NOT NULL REFERENCES trials(key),
                rule TEXT NOT NULL,
                action TEXT NOT NULL DEFAULT 'stop' CHECK (action IN ('stop', 'pause', 'promote')),
                epoch INTEGER NOT NULL CHECK (epoch >= 0),
                reason TEXT NOT NULL,
                attempt_id INTEGER REFERENCES attempts(attempt_id),
                decided_at TEXT NOT NULL
            );
            CREATE INDEX stopping_decisions_by_trial ON stopping_decisions(trial_key, id);
            """)
    }
}
