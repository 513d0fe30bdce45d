"""The SQLite schema of the store, as numbered migrations (`PRAGMA user_version` counts them).

Each migration runs once, in order, in one transaction; a released migration is never edited,
a change of schema is a new one at the end.
"""

from __future__ import annotations

MIGRATIONS: tuple[tuple[int, str], ...] = (
    (1, """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
    INSERT INTO meta VALUES ('rev', 0);
    CREATE TABLE runs (
        id TEXT PRIMARY KEY, created_at REAL NOT NULL, input_path TEXT NOT NULL, recursive INTEGER NOT NULL,
        prompt TEXT NOT NULL, profile TEXT NOT NULL, task_count INTEGER NOT NULL, started_at REAL
    );
    CREATE TABLE tasks (
        id TEXT PRIMARY KEY, run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        idx INTEGER NOT NULL, source_name TEXT NOT NULL, source_path TEXT NOT NULL, prompt TEXT NOT NULL,
        status TEXT NOT NULL DEFAULT 'pending', attempts INTEGER NOT NULL DEFAULT 0, http_status INTEGER,
        error TEXT, warning TEXT, rev INTEGER NOT NULL, started_at REAL, finished_at REAL, debug_log TEXT
    );
    CREATE INDEX tasks_by_run_rev ON tasks(run_id, rev);
    CREATE INDEX tasks_by_run_idx ON tasks(run_id, idx);
    CREATE INDEX tasks_by_run_status ON tasks(run_id, status);
    CREATE TABLE results (
        id TEXT PRIMARY KEY, task_id TEXT NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,
        sha256 TEXT NOT NULL, format TEXT NOT NULL, width INTEGER NOT NULL, height INTEGER NOT NULL,
        bytes INTEGER NOT NULL, origin TEXT NOT NULL, url TEXT, selected INTEGER NOT NULL DEFAULT 0,
        created_at REAL NOT NULL
    );
    CREATE INDEX results_by_task ON results(task_id);
    CREATE INDEX results_by_sha ON results(sha256);
    CREATE TABLE attempts (
        id INTEGER PRIMARY KEY, task_id TEXT NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,
        number INTEGER NOT NULL, started_at REAL NOT NULL
    );
    CREATE INDEX attempts_by_task ON attempts(task_id);
    CREATE TABLE removed (run_id TEXT NOT NULL, task_id TEXT NOT NULL, rev INTEGER NOT NULL);
    CREATE INDEX removed_by_run_rev ON removed(run_id, rev);
    """),
    (2, """
    ALTER TABLE runs ADD COLUMN mode TEXT NOT NULL DEFAULT 'edit';
    ALTER TABLE runs ADD COLUMN spec TEXT;
    ALTER TABLE tasks ADD COLUMN refs TEXT;
    ALTER TABLE tasks ADD COLUMN output_name TEXT;
    ALTER TABLE tasks ADD COLUMN overrides TEXT;
    ALTER TABLE results ADD COLUMN prompt TEXT;
    """),
    # 3: where each result was saved (for the "saved" mark and the "not yet saved" filter).
    (3, """
    CREATE TABLE IF NOT EXISTS saves (
        result_id TEXT NOT NULL REFERENCES results(id) ON DELETE CASCADE, output_dir TEXT NOT NULL,
        layout TEXT NOT NULL, saved_at REAL NOT NULL, PRIMARY KEY (result_id, output_dir, layout)
    ) WITHOUT ROWID;
    """),
    # 4: a task continued from a result keeps that result's bytes as its source
    # (`source_sha`, so the cache keeps the file) and where it came from (`parent`).
    (4, """
    ALTER TABLE tasks ADD COLUMN source_sha TEXT;
    ALTER TABLE tasks ADD COLUMN parent TEXT;
    CREATE INDEX tasks_by_source_sha ON tasks(source_sha) WHERE source_sha IS NOT NULL;
    """),
    # 5: a run's rate counts the tasks finished lately, and a finished run's rate stops at its last
    # end: both read a status's tasks by finish time (a short range and a last row instead of every
    # task of the run). The new index starts with the old one's columns, which it replaces.
    (5, """
    CREATE INDEX tasks_by_run_status_finished ON tasks(run_id, status, finished_at);
    DROP INDEX tasks_by_run_status;
    """),
    # 6: the review flags. `flags` is NULL until a result was looked at, then {name: reason};
    # `mark` keeps what finding its near-duplicates needs (its thumbnail and its source's). The
    # partial index finds the results still to look at without reading the others.
    (6, """
    ALTER TABLE results ADD COLUMN flags TEXT;
    ALTER TABLE results ADD COLUMN mark BLOB;
    CREATE INDEX results_unchecked ON results(task_id) WHERE flags IS NULL;
    """),
    # 7: what each attempt used and cost (spend): tokens in (text, image), tokens out, images returned,
    # the cost (the gateway's, else from the run's prices) and where it came from ('gateway', 'prices');
    # NULL when not known. A day's spend reads attempts by time.
    (7, """
    ALTER TABLE attempts ADD COLUMN input_tokens INTEGER;
    ALTER TABLE attempts ADD COLUMN input_image_tokens INTEGER;
    ALTER TABLE attempts ADD COLUMN output_tokens INTEGER;
    ALTER TABLE attempts ADD COLUMN images INTEGER;
    ALTER TABLE attempts ADD COLUMN cost REAL;
    ALTER TABLE attempts ADD COLUMN cost_basis TEXT;
    CREATE INDEX attempts_by_time ON attempts(started_at);
    """),
    # 8: a run's budget, the most it may spend (NULL: none); the engine pauses the run before a call
    # that could pass it.
    (8, """
    ALTER TABLE runs ADD COLUMN budget REAL;
    """),
    # 9: comparisons: one pilot run per variant over the same folder, side by side. A variant keeps its
    # name, prompt and model so it still reads after its run is deleted (run_id has no foreign key
    # for that reason); `chosen` is the variant whose run went on to the rest of the folder.
    (9, """
    CREATE TABLE comparisons (
        id TEXT PRIMARY KEY, created_at REAL NOT NULL, input_path TEXT NOT NULL, recursive INTEGER NOT NULL,
        sample INTEGER NOT NULL, chosen TEXT
    );
    CREATE TABLE comparison_variants (
        comparison_id TEXT NOT NULL REFERENCES comparisons(id) ON DELETE CASCADE, position INTEGER NOT NULL,
        name TEXT NOT NULL, run_id TEXT NOT NULL, prompt TEXT NOT NULL, model TEXT NOT NULL,
        PRIMARY KEY (comparison_id, position)
    ) WITHOUT ROWID;
    """),
    # 10: captions. A result's own `caption` (NULL: the save rule's caption), the text the model sent
    # with its images (`answer_text`, capped), and the calls a captioning job makes: `kind` 'caption'
    # (NULL: an image call) and `profile`, the captioning profile's API URL, model and currency
    # (NULL: the run's), so a day's spend names the model that was paid and an image run's estimate
    # never averages caption calls in.
    (10, """
    ALTER TABLE results ADD COLUMN caption TEXT;
    ALTER TABLE results ADD COLUMN answer_text TEXT;
    ALTER TABLE attempts ADD COLUMN kind TEXT;
    ALTER TABLE attempts ADD COLUMN profile TEXT;
    """),
    # 11: batch delivery. A batch is one submission to a provider's batch service, named by the
    # console's own id (the label the provider keeps, so a restart finds it). `provider_id` is NULL
    # until the provider answered the submission; `done` is the provider's "terminal"; `finished_at`
    # is set once every answer is stored (an active batch has none); `stopped` marks a cancel the
    # user asked for. `tasks.batch_id` names the batch a task waits in.
    (11, """
    CREATE TABLE batches (
        id TEXT PRIMARY KEY, run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE, service TEXT NOT NULL,
        provider_id TEXT, status TEXT NOT NULL, done INTEGER NOT NULL DEFAULT 0, total INTEGER NOT NULL DEFAULT 0,
        completed INTEGER NOT NULL DEFAULT 0, failed INTEGER NOT NULL DEFAULT 0, error TEXT,
        created_at REAL NOT NULL, submitted_at REAL, finished_at REAL, stopped INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX batches_active ON batches(run_id) WHERE finished_at IS NULL;
    CREATE INDEX batches_by_run ON batches(run_id, created_at);
    ALTER TABLE tasks ADD COLUMN batch_id TEXT;
    CREATE INDEX tasks_by_batch ON tasks(batch_id) WHERE batch_id IS NOT NULL;
    """),
    # 12: the code and parameters of a stored message beside its English text ({"code", "params"} as
    # JSON, NULL for text without a code), so a page in another language says it in that language:
    # a task's error and warning, a batch's error, a result's review-flag reasons ({flag: message}).
    (12, """
    ALTER TABLE tasks ADD COLUMN error_msg TEXT;
    ALTER TABLE tasks ADD COLUMN warning_msg TEXT;
    ALTER TABLE batches ADD COLUMN error_msg TEXT;
    ALTER TABLE results ADD COLUMN flag_msgs TEXT;
    """),
)
