// RunSchema: the run database's tables as versioned GRDB migrations. The
// layout is documented column by column in docs/schema.md; change both together.
import GRDB

/// The run database's schema. Migrations are append-only: a released
/// migration is never edited, a change is a new migration.
public enum RunSchema {
    /// `PRAGMA application_id` of a run database ("FSWP"), so that FactSweep
    /// (and `file(1)`) can tell its databases from any other SQLite file.
    public static let applicationID: Int32 = 0x4653_5750

    /// Whether `table` has `column`: readers that never migrate a file (the report, the dashboard) read
    /// what a later migration added only where it exists, and take it as absent before.
    public static func has(_ db: Database, column: String, in table: String) throws -> Bool {
        try db.columns(in: table).contains { $0.name == column }
    }

    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1-run-database") { db in
            try db.execute(sql: "PRAGMA application_id = \(applicationID)")
            try db.execute(sql: version1)
        }
        migrator.registerMigration("v2-trial-summary") { db in
            // The worker's final summary of a finished trial (JSON: trainable
            // parameters, base weight bytes, peak RSS, perplexity before/after …).
            try db.execute(sql: "ALTER TABLE trials ADD COLUMN summary TEXT CHECK (summary IS NULL OR json_valid(summary))")
        }
        migrator.registerMigration("v3-claim-indexes") { db in
            // claimNextTrial runs for every assignment: it counts the trials started per condition from the
            // first index alone, and finds the pending trials through the second (each still read from its
            // row for its key and back-off) rather than by scanning the trial rows with their configurations
            // (about 5 ms a claim at 2,000 trials without them, 1 ms with).
            try db.execute(sql: """
                CREATE INDEX trials_started_by_condition ON trials(sweep_id, condition, status, attempts);
                CREATE INDEX trials_claim_order ON trials(status, model, last_epoch, sweep_id, condition);
                """)
        }
        migrator.registerMigration("v4-integer-attempt-ids", migrate: IntegerAttemptIDs.migrate)
        migrator.registerMigration("v5-worker-slurm-task") { db in
            // The Slurm job and array task a worker runs in (from its hello), so that
            // `factsweep status` can match workers to `squeue`; NULL outside Slurm.
            try db.execute(sql: """
                ALTER TABLE workers ADD COLUMN slurm_job_id TEXT;
                ALTER TABLE workers ADD COLUMN slurm_array_task_id INTEGER;
                """)
        }
        migrator.registerMigration("v6-retry-accounting") { db in
            // Which attempts count against a trial's retry limit (those that ended without moving the trial
            // on, or with an error of the trial's own), the back-off before its next attempt, and the highest
            // epoch it ever recorded (epochs after a checkpoint are rewound on a requeue, so `last_epoch`
            // alone cannot tell a progressing attempt from one that redid lost work).
            try db.execute(sql: """
                ALTER TABLE trials ADD COLUMN retries_used INTEGER NOT NULL DEFAULT 0;
                ALTER TABLE trials ADD COLUMN not_before TEXT;
                ALTER TABLE trials ADD COLUMN epoch_high_water INTEGER NOT NULL DEFAULT 0;
                ALTER TABLE attempts ADD COLUMN high_water_at_start INTEGER NOT NULL DEFAULT 0;
                ALTER TABLE attempts ADD COLUMN charged INTEGER NOT NULL DEFAULT 0 CHECK (charged IN (0, 1));
                UPDATE attempts SET charged = (outcome = 'lost'), high_water_at_start = resumed_from_epoch;
                UPDATE trials SET epoch_high_water = last_epoch,
                    retries_used = (SELECT COUNT(*) FROM attempts a WHERE a.trial_key = trials.key AND a.outcome = 'lost');
                """)
        }
        migrator.registerMigration("v7-epoch-zero-base-model", migrate: Self.allowEpochZero)
        migrator.registerMigration("v8-attempt-phase") { db in
            // What a running attempt is doing (from its worker's heartbeats) and since when, for
            // `factsweep status`; NULL until the first heartbeat names it, and for older attempts.
            try db.execute(sql: """
                ALTER TABLE attempts ADD COLUMN phase TEXT CHECK (phase IS NULL OR phase IN
                    ('loading', 'baseline', 'training', 'evaluating', 'checkpointing', 'exporting'));
                ALTER TABLE attempts ADD COLUMN phase_since TEXT;
                """)
        }
        migrator.registerMigration("v9-stopping-decisions", migrate: StoppingDecisions.migrate)
        migrator.registerMigration("v10-attempt-refused") { db in
            // A worker refused the assignment for settings its build does not read, at no cost to the trial
            // (AttemptSetback.unreadSettings): `factsweep status` says why such a trial waits. Neither the
            // outcome (`failed`) nor `charged = 0` tells it from a permanent failure the user has retried.
            try db.execute(sql: "ALTER TABLE attempts ADD COLUMN refused INTEGER NOT NULL DEFAULT 0 CHECK (refused IN (0, 1))")
        }
        migrator.registerMigration("v11-trial-storage", migrate: Self.addTrialStorage)
        return migrator
    }

    /// The storage a trial's model is loaded in (`LinearStorage.training` of its method and precision),
    /// so that a worker holding a model in one storage is given that storage's trials first
    /// (`claimNextTrial`); the claim order's index gains it. Existing rows are filled from their method
    /// and their configuration's precision (absent: f32). The SQL is written out, as a released migration
    /// must not change with the code: `TrialStorageMigrationTests` checks it against `LinearStorage.training`.
    private static func addTrialStorage(_ db: Database) throws {
        try db.execute(sql: """
            ALTER TABLE trials ADD COLUMN storage TEXT NOT NULL DEFAULT 'float32' CHECK (storage IN ('float32', 'nf4', 'bf16'));
            UPDATE trials SET storage = CASE
                WHEN method = 'qlora' THEN 'nf4'
                WHEN method IN ('lora', 'ia3') AND json_extract(config, '$.training.precision') = 'bf16' THEN 'bf16'
                ELSE 'float32' END;
            DROP INDEX trials_claim_order;
            CREATE INDEX trials_claim_order ON trials(status, model, storage, last_epoch, sweep_id, condition);
            """)
    }

    /// Epoch 0 is the base model evaluated before training (`eval_epochs` with 0).
    /// SQLite cannot change a CHECK in place: the table is rebuilt, rows and ids
    /// kept; question_outputs' foreign key names the table and so still holds.
    private static func allowEpochZero(_ db: Database) throws {
        try db.execute(sql: """
            CREATE TABLE new_epoch_metrics (
                id INTEGER PRIMARY KEY,
                trial_key TEXT NOT NULL REFERENCES trials(key),
                epoch INTEGER NOT NULL CHECK (epoch >= 0),
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
            INSERT INTO new_epoch_metrics SELECT id, trial_key, epoch, loss, tokens, train_seconds, epoch_seconds, accuracy,
                accuracy_at_threshold, key_match, perplexity, recorded_at, attempt_id FROM epoch_metrics;
            DROP TABLE epoch_metrics;
            ALTER TABLE new_epoch_metrics RENAME TO epoch_metrics;
            CREATE INDEX epoch_metrics_by_time ON epoch_metrics(recorded_at);
            """)
    }

    /// The first schema. Times are UTC text `YYYY-MM-DD HH:MM:SS.SSS` (GRDB's
    /// date format), which sorts and works with SQLite's date functions.
    private static let version1 = """
        CREATE TABLE sweeps (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            spec TEXT NOT NULL CHECK (json_valid(spec)),
            created_at TEXT NOT NULL
        );

        CREATE TABLE workers (
            id TEXT PRIMARY KEY,
            host TEXT NOT NULL,
            pid INTEGER NOT NULL,
            threads INTEGER NOT NULL,
            protocol_version TEXT NOT NULL,
            connected_at TEXT NOT NULL,
            last_seen TEXT NOT NULL,
            models TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(models)),
            status TEXT NOT NULL CHECK (status IN ('connected', 'lost', 'departed'))
        );

        CREATE TABLE trials (
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
            current_attempt_id TEXT REFERENCES attempts(attempt_id),
            checkpoint_epoch INTEGER,
            checkpoint_path TEXT,
            checkpoint_blob BLOB,
            last_epoch INTEGER NOT NULL DEFAULT 0,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            CHECK (checkpoint_path IS NULL OR checkpoint_blob IS NULL)
        );
        CREATE INDEX trials_by_status ON trials(status);
        CREATE INDEX trials_by_condition ON trials(sweep_id, condition);
        CREATE INDEX trials_by_settings ON trials(method, rank, alpha, lr, epochs, batch_size, seed);

        CREATE TABLE attempts (
            id INTEGER PRIMARY KEY,
            trial_key TEXT NOT NULL REFERENCES trials(key),
            attempt_id TEXT NOT NULL UNIQUE,
            worker_id TEXT NOT NULL REFERENCES workers(id),
            started_at TEXT NOT NULL,
            ended_at TEXT,
            lease_expires_at TEXT NOT NULL,
            resumed_from_epoch INTEGER NOT NULL DEFAULT 0,
            outcome TEXT NOT NULL DEFAULT 'running' CHECK (outcome IN
                ('running', 'done', 'failed', 'diverged', 'cancelled', 'lost', 'superseded')),
            reason TEXT
        );
        CREATE INDEX attempts_by_trial ON attempts(trial_key);
        CREATE INDEX attempts_by_worker ON attempts(worker_id, outcome);

        CREATE TABLE epoch_metrics (
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
            attempt_id TEXT NOT NULL REFERENCES attempts(attempt_id),
            UNIQUE (trial_key, epoch)
        );
        CREATE INDEX epoch_metrics_by_time ON epoch_metrics(recorded_at);

        CREATE TABLE question_outputs (
            id INTEGER PRIMARY KEY,
            trial_key TEXT NOT NULL,
            epoch INTEGER NOT NULL,
            question TEXT NOT NULL,
            paraphrase INTEGER NOT NULL CHECK (paraphrase IN (0, 1)),
            reference TEXT NOT NULL,
            answer TEXT NOT NULL,
            similarity REAL NOT NULL,
            key_match INTEGER CHECK (key_match IN (0, 1)),
            UNIQUE (trial_key, epoch, question),
            FOREIGN KEY (trial_key, epoch) REFERENCES epoch_metrics(trial_key, epoch) ON DELETE CASCADE
        );

        CREATE TABLE events (
            id INTEGER PRIMARY KEY,
            at TEXT NOT NULL,
            kind TEXT NOT NULL,
            trial_key TEXT,
            worker_id TEXT,
            detail TEXT
        );
        CREATE INDEX events_by_trial ON events(trial_key);
        """
}
