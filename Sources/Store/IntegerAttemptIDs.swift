// IntegerAttemptIDs: migration v4 — attempt ids become the INTEGER key of
// `attempts` everywhere they are stored, as the protocol's `attempt` is an
// integer; and `workers.status` loses `departed`, a value nothing ever set.
import GRDB

/// Rebuilds the tables that hold attempt ids (`attempts`, `trials`, `epoch_metrics`) and `workers`.
///
/// SQLite cannot change a column's type, so each table is created anew, filled from the old one and
/// renamed (the procedure of sqlite.org/lang_altertable.html; GRDB runs the migration with foreign keys
/// off and checks them all at its end). Before v4 an attempt's TEXT `attempt_id` was the decimal of its
/// row id; the rows are mapped through the old `attempts` table rather than by parsing the text, so the
/// ids after the migration are the attempts' row ids whatever the text said.
enum IntegerAttemptIDs {
    static func migrate(_ db: Database) throws {
        try db.execute(sql: """
            CREATE TABLE new_attempts (
                attempt_id INTEGER PRIMARY KEY,
                trial_key TEXT NOT NULL REFERENCES trials(key),
                worker_id TEXT NOT NULL REFERENCES workers(id),
                started_at TEXT NOT NULL,
                ended_at TEXT,
                lease_expires_at TEXT NOT NULL,
                resumed_from_epoch INTEGER NOT NULL DEFAULT 0,
                outcome TEXT NOT NULL DEFAULT 'running' CHECK (outcome IN
                    ('running', 'done', 'failed', 'diverged', 'cancelled', 'lost', 'superseded')),
                reason TEXT
            );
            INSERT INTO new_attempts (attempt_id, trial_key, worker_id, started_at, ended_at, lease_expires_at,
                                      resumed_from_epoch, outcome, reason)
            SELECT id, trial_key, worker_id, started_at, ended_at, lease_expires_at, resumed_from_epoch, outcome, reason
            FROM attempts;

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
                    ('pending', 'running', 'done', 'failed', 'diverged', 'cancelled', 'stale')),
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
                CHECK (checkpoint_path IS NULL OR checkpoint_blob IS NULL)
            );
            INSERT INTO new_trials (rowid, key, sweep_id, condition, config, model, method, rank, alpha, lr, epochs,
                                    seed, batch_size, status, attempts, retry_limit, current_attempt_id,
                                    checkpoint_epoch, checkpoint_path, checkpoint_blob, last_epoch, created_at,
                                    updated_at, summary)
            SELECT t.rowid, t.key, t.sweep_id, t.condition, t.config, t.model, t.method, t.rank, t.alpha, t.lr, t.epochs,
                   t.seed, t.batch_size, t.status, t.attempts, t.retry_limit,
                   (SELECT a.id FROM attempts a WHERE a.attempt_id = t.current_attempt_id),
                   t.checkpoint_epoch, t.checkpoint_path, t.checkpoint_blob, t.last_epoch, t.created_at,
                   t.updated_at, t.summary
            FROM trials t;

            CREATE TABLE new_epoch_metrics (
                id INTEGER PRIMARY KEY,
                trial_key TEXT NOT NULL REFERENCES trials(key),
                epoch INTEGER NOT NULL CHECK (epoch >= 1),
                loss REAL,
                tokens INTEGER,
                train_seconds REAL NOT NULL,
                epoch_seconds REAL NOT NULL,
                accuracy REAL,
                accuracy_at_threshold REAL,
                key_match REAL,
                perplexity REAL,
                recorded_at TEXT NOT NULL,
                attempt_id INTEGER NOT NULL REFERENCES attempts(attempt_id),
                UNIQUE (trial_key, epoch)
            );
            INSERT INTO new_epoch_metrics (id, trial_key, epoch, loss, tokens, train_seconds, epoch_seconds, accuracy,
                                           accuracy_at_threshold, key_match, perplexity, recorded_at, attempt_id)
            SELECT e.id, e.trial_key, e.epoch, e.loss, e.tokens, e.train_seconds, e.epoch_seconds, e.accuracy,
                   e.accuracy_at_threshold, e.key_match, e.perplexity, e.recorded_at,
                   (SELECT a.id FROM attempts a WHERE a.attempt_id = e.attempt_id)
            FROM epoch_metrics e;

            CREATE TABLE new_workers (
                id TEXT PRIMARY KEY,
                host TEXT NOT NULL,
                pid INTEGER NOT NULL,
                threads INTEGER NOT NULL,
                protocol_version TEXT NOT NULL,
                connected_at TEXT NOT NULL,
                last_seen TEXT NOT NULL,
                models TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(models)),
                status TEXT NOT NULL CHECK (status IN ('connected', 'lost'))
            );
            INSERT INTO new_workers (id, host, pid, threads, protocol_version, connected_at, last_seen, models, status)
            SELECT id, host, pid, threads, protocol_version, connected_at, last_seen, models,
                   CASE status WHEN 'departed' THEN 'lost' ELSE status END
            FROM workers;

            DROP TABLE epoch_metrics;
            DROP TABLE attempts;
            DROP TABLE trials;
            DROP TABLE workers;
            ALTER TABLE new_workers RENAME TO workers;
            ALTER TABLE new_trials RENAME TO trials;
            ALTER TABLE new_attempts RENAME TO attempts;
            ALTER TABLE new_epoch_metrics RENAME TO epoch_metrics;

            CREATE INDEX trials_by_status ON trials(status);
            CREATE INDEX trials_by_condition ON trials(sweep_id, condition);
            CREATE INDEX trials_by_settings ON trials(method, rank, alpha, lr, epochs, batch_size, seed);
            CREATE INDEX trials_started_by_condition ON trials(sweep_id, condition, status, attempts);
            CREATE INDEX trials_claim_order ON trials(status, model, last_epoch, sweep_id, condition);
            CREATE INDEX attempts_by_trial ON attempts(trial_key);
            CREATE INDEX attempts_by_worker ON attempts(worker_id, outcome);
            CREATE INDEX epoch_metrics_by_time ON epoch_metrics(recorded_at);
            """)
    }
}
