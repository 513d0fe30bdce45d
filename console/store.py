"""Persist runs, tasks, results and attempts in SQLite (WAL), each change touching O(1) rows.

A global revision counter stamps every changed task, so `tasks_since(rev)` returns only what
changed; deleted tasks leave a tombstone with the revision of their removal. Connections are
per thread (Flask request threads, the engine's loop thread, its thread pool).
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import sqlite3
import threading
import time
import weakref
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

from .messages import say, stored
from .records import ResultRecord, RunRecord, TaskPage, TaskRecord
from .schema import MIGRATIONS
from .store_batches import BatchQueries
from .store_budget import BudgetQueries
from .store_caption_calls import CaptionCallQueries
from .store_captions import CaptionQueries
from .store_compare import CompareQueries
from .store_flags import FlagQueries
from .store_history import HistoryQueries
from .store_pilot import PilotQueries
from .store_progress import STATUSES, ProgressQueries
from .store_rows import RESULT_COLUMNS, TASK_COLUMNS, result_record, task_record
from .store_saves import SaveQueries, chunks
from .store_selection import SelectionQueries, task_filter
from .store_spend import SpendQueries, currency_of

__all__ = ["FINISHED", "RUN_MODES", "STATUSES", "NewResult", "NewTask", "Store", "new_id"]
log = logging.getLogger(__name__)
FINISHED = ("done", "failed", "stopped")
CACHE_KIB = 512  # SQLite page cache per connection

RUN_MODES = ("edit", "generate", "table")
INTERRUPTED = say("engine.interrupted")  # why a task a crash or a kill left unfinished is stopped



def new_id(prefix: str) -> str:
    """Return a fresh opaque id."""
    return f"{prefix}{secrets.token_hex(8)}"


def _owner_only(path: Path) -> None:
    """Make the database and its -wal/-shm files readable by the owner only (runs keep their key).

    The file is created 0600 before SQLite opens it: SQLite gives the -wal and -shm files it
    creates the database file's mode, so they are 0600 from their first byte (a 0644
    WAL let any local user read the key). Files an older version left looser are tightened.
    """
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    for name in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        try:
            mode = name.stat().st_mode & 0o777
        except FileNotFoundError:
            continue
        if mode & 0o077:
            name.chmod(0o600)
            log.warning("%s was readable by others (mode %o); now 0600", name, mode)


@dataclass(frozen=True)
class NewResult:
    """An image to attach to a task (already in the cache)."""

    sha256: str
    format: str
    width: int
    height: int
    size: int
    origin: str
    url: str | None = None
    prompt: str | None = None  # the prompt that produced it (a task's prompt can change)
    answer_text: str | None = None  # the text the model sent with it, cleaned (console.upstream.answer_text)


@dataclass(frozen=True)
class NewTask:
    """One task of a new run: its source (empty `path` in generate mode) and what it sends.

    `prompt` None means the run's prompt; `references` are further input images sent with the
    source; `output_name` is the stem saves use instead of the source's; `overrides` are profile
    fields for this task only (a table row's `size` / `n`).
    """

    name: str
    path: str
    prompt: str | None = None
    references: tuple[str, ...] = ()
    output_name: str | None = None
    overrides: dict[str, Any] | None = None


class Store(FlagQueries, SelectionQueries, ProgressQueries, SaveQueries, PilotQueries, SpendQueries, HistoryQueries,
            BudgetQueries, CompareQueries, CaptionQueries, CaptionCallQueries, BatchQueries):
    """The SQLite database of runs, tasks, results and attempts."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._local = threading.local()
        # Weak: a request thread's connection is closed when the thread ends (werkzeug starts a
        # thread per request; a strong list here leaked one connection and two fds per request).
        self._holders: weakref.WeakSet[_Holder] = weakref.WeakSet()
        self._lock = threading.Lock()
        # Writers queue here rather than in SQLite's busy handler, which sleeps 1, 2, 5… ms.
        self._write_lock = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        _owner_only(self.path)
        with self._tx() as db:
            self._migrate(db)

    # -- connections ------------------------------------------------------------------------

    def _db(self) -> sqlite3.Connection:
        holder = getattr(self._local, "holder", None)
        if holder is None:
            db = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA foreign_keys=ON")
            # Many threads hold a connection each; SQLite's default 2 MB page cache apiece made
            # the server grow with the database (bench: memory). The OS caches the file anyway.
            db.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
            holder = self._local.holder = _Holder(db)
            with self._lock:
                self._holders.add(holder)
        return holder.db

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        db = self._db()
        with self._write_lock:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """Read at one moment: the queries of this thread in the block see one state of the database."""
        db = self._db()
        if db.in_transaction:  # already inside one
            yield
            return
        db.execute("BEGIN")  # deferred: WAL keeps the first read's state until the end, writers go on
        try:
            yield
        finally:
            db.execute("COMMIT")

    def close(self) -> None:
        """Close every open connection (call once no thread uses the store any more)."""
        with self._lock:
            holders = list(self._holders)
            self._holders.clear()
        for holder in holders:
            holder.db.close()
        self._local = threading.local()

    def _migrate(self, db: sqlite3.Connection) -> None:
        version = db.execute("PRAGMA user_version").fetchone()[0]
        for number, script in MIGRATIONS:
            if number > version:
                for statement in script.split(";"):
                    if statement.strip():
                        db.execute(statement)
                db.execute(f"PRAGMA user_version={number}")

    @staticmethod
    def _bump(db: sqlite3.Connection) -> int:
        return db.execute("UPDATE meta SET value = value + 1 WHERE key = 'rev' RETURNING value").fetchone()[0]

    def rev(self) -> int:
        """Return the current global revision."""
        return self._db().execute("SELECT value FROM meta WHERE key = 'rev'").fetchone()[0]

    # -- runs -------------------------------------------------------------------------------

    def create_run(self, input_path: str, recursive: bool, prompt: str, profile: dict[str, Any],
                   sources: Sequence[tuple[str, str] | NewTask], *, mode: str = "edit",
                   spec: dict[str, Any] | None = None, held: frozenset[int] = frozenset()) -> str:
        """Create a run with one pending task per source, a (name, path) pair or a NewTask; return its id.

        `mode` is how the tasks were made (edit, generate, table) and `spec` what they were made
        from (variables, table path, reference folders), kept for the page and for exports; the
        tasks at the indices in `held` are stored held (a pilot's rest), not pending.
        """
        if mode not in RUN_MODES:
            raise ValueError(f"unknown run mode {mode!r}")
        tasks = [source if isinstance(source, NewTask) else NewTask(*source) for source in sources]
        run_id = new_id("r")
        with self._tx() as db:
            rev = self._bump(db)
            db.execute("INSERT INTO runs (id, created_at, input_path, recursive, prompt, profile, task_count, mode, spec) "
                       "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       (run_id, time.time(), input_path, int(recursive), prompt, json.dumps(profile), len(tasks),
                        mode, json.dumps(spec) if spec is not None else None))
            db.executemany(
                "INSERT INTO tasks (id, run_id, idx, source_name, source_path, prompt, rev, refs, output_name, overrides, "
                "status) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                ((new_id("t"), run_id, index, task.name, task.path, prompt if task.prompt is None else task.prompt, rev,
                  json.dumps(list(task.references)) if task.references else None, task.output_name,
                  json.dumps(task.overrides) if task.overrides else None, "held" if index in held else "pending")
                 for index, task in enumerate(tasks)),
            )
        return run_id

    def runs(self) -> list[RunRecord]:
        """Return every run, newest first, with its progress."""
        rows = self._db().execute("SELECT * FROM runs ORDER BY created_at DESC").fetchall()
        return [self._run(row) for row in rows]

    def run_ids(self) -> list[str]:
        """Return every run id, newest first (cheap: no progress counted)."""
        return [row[0] for row in self._db().execute("SELECT id FROM runs ORDER BY created_at DESC")]

    def input_paths(self) -> list[str]:
        """Return every run's input path (cheap: no progress counted)."""
        return [row[0] for row in self._db().execute("SELECT input_path FROM runs")]

    def run(self, run_id: str) -> RunRecord | None:
        """Return one run with its progress, or None."""
        row = self._db().execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
        return self._run(row) if row else None

    def _run(self, row: sqlite3.Row) -> RunRecord:
        profile = json.loads(row["profile"])
        progress = self.batch_progress(row["id"]) if profile.get("delivery") == "batch" else self.progress(row["id"])
        return RunRecord(
            id=row["id"], created_at=row["created_at"], input_path=row["input_path"],
            recursive=bool(row["recursive"]), prompt=row["prompt"], task_count=row["task_count"],
            mode=row["mode"], spec=json.loads(row["spec"]) if row["spec"] else None,
            model=profile.get("model", ""), api_url=profile.get("api_url", ""),
            concurrency=profile.get("concurrency", 1), progress=progress,
            selected=self.selected_count(row["id"]), spend=self.run_spend(row["id"], currency_of(profile)),
            budget=row["budget"], delivery=profile.get("delivery", "live"), batches=self.run_batches(row["id"]))

    def run_profile(self, run_id: str) -> dict[str, Any]:
        """Return the profile a run was started with (API key included: engine use only)."""
        row = self._db().execute("SELECT profile FROM runs WHERE id = ?", (run_id,)).fetchone()
        return json.loads(row["profile"]) if row else {}

    def set_run_profile(self, run_id: str, profile: dict[str, Any]) -> None:
        """Replace a run's stored profile (e.g. a new concurrency)."""
        with self._tx() as db:
            db.execute("UPDATE runs SET profile = ? WHERE id = ?", (json.dumps(profile), run_id))

    def mark_run_started(self, run_id: str) -> None:
        """Record when dispatching (re)started, for the rate and ETA."""
        with self._tx() as db:
            db.execute("UPDATE runs SET started_at = ? WHERE id = ?", (time.time(), run_id))

    def delete_run(self, run_id: str) -> list[tuple[str, str]]:
        """Delete a run and everything in it; return the (sha256, format) of its results."""
        with self._tx() as db:
            freed = db.execute(
                "SELECT r.sha256, r.format FROM results r JOIN tasks t ON t.id = r.task_id WHERE t.run_id = ?",
                (run_id,)).fetchall()
            db.execute("DELETE FROM removed WHERE run_id = ?", (run_id,))
            db.execute("DELETE FROM runs WHERE id = ?", (run_id,))
            self._bump(db)
        return [(row[0], row[1]) for row in freed]

    # -- tasks ------------------------------------------------------------------------------

    def tasks_since(self, run_id: str, since: int = 0, status: str | None = None, q: str | None = None,
                    offset: int = 0, limit: int | None = None, flag: str | None = None) -> TaskPage:
        """Return the tasks of a run changed after revision `since` (all when 0), filtered and paged."""
        db = self._db()
        rev = self.rev()  # read first: a change racing this query is sent again next time, never lost
        clause, args = task_filter(run_id, status, q, flag)
        clause += " AND rev > ?"
        args.append(since)
        total = db.execute(f"SELECT COUNT(*) FROM tasks WHERE {clause}", args).fetchone()[0]
        page = f" LIMIT {int(limit)} OFFSET {int(offset)}" if limit is not None else (f" LIMIT -1 OFFSET {int(offset)}" if offset else "")
        rows = db.execute(f"SELECT {TASK_COLUMNS} FROM tasks WHERE {clause} ORDER BY idx{page}", args).fetchall()
        removed = [row[0] for row in db.execute("SELECT task_id FROM removed WHERE run_id = ? AND rev > ?", (run_id, since))] if since else []
        return TaskPage(rev, total, self._tasks(rows, spend_of_run=run_id), removed)

    def iter_tasks(self, run_id: str, page: int = 1000) -> Iterator[TaskRecord]:
        """Yield every task of a run with its results, `page` at a time (memory stays flat)."""
        offset = 0
        while True:
            tasks = self.tasks_since(run_id, offset=offset, limit=page).tasks
            yield from tasks
            if len(tasks) < page:
                return
            offset += page

    def task(self, task_id: str, *, results: bool = True, spend: bool = False) -> TaskRecord | None:
        """Return one task with its results (none with `results` False) and, if asked, its spend; or None."""
        row = self._db().execute(f"SELECT {TASK_COLUMNS} FROM tasks WHERE id = ?", (task_id,)).fetchone()
        if row is None:
            return None
        if not results:
            return task_record(row, ())
        return self._tasks([row], spend_of_run=row["run_id"] if spend else None)[0]

    def _tasks(self, rows: list[sqlite3.Row], spend_of_run: str | None = None) -> list[TaskRecord]:
        """Return the tasks of these rows with their results, and their spend when given their run."""
        ids = [row["id"] for row in rows]
        results: dict[str, list[ResultRecord]] = {}  # only tasks with results: the others share the empty tuple
        for chunk in chunks(ids, 500):
            marks = ",".join("?" * len(chunk))
            for row in self._db().execute(
                    f"SELECT {RESULT_COLUMNS} FROM results WHERE task_id IN ({marks}) ORDER BY created_at, rowid", chunk):
                results.setdefault(row["task_id"], []).append(result_record(row))
        spends = self.task_spends(spend_of_run, ids) if spend_of_run is not None else {}
        return [task_record(row, tuple(results.get(row["id"], ())), spends.get(row["id"])) for row in rows]

    def task_ids(self, run_id: str, statuses: Iterable[str]) -> list[str]:
        """Return the ids of a run's tasks in these statuses, in source order."""
        wanted = tuple(statuses)
        marks = ",".join("?" * len(wanted))
        rows = self._db().execute(f"SELECT id FROM tasks WHERE run_id = ? AND status IN ({marks}) ORDER BY idx",
                                  (run_id, *wanted))
        return [row[0] for row in rows]

    def set_status(self, task_ids: Sequence[str], status: str, error: str | None = None,
                   only_from: Sequence[str] = ()) -> int:
        """Move tasks to `status` (optionally only those now in `only_from`); return how many moved."""
        moved = 0
        with self._tx() as db:
            rev = self._bump(db)
            guard = f" AND status IN ({','.join('?' * len(only_from))})" if only_from else ""
            finished_at = time.time() if status in FINISHED else None
            for chunk in chunks(list(task_ids), 500):
                marks = ",".join("?" * len(chunk))
                moved += db.execute(
                    f"UPDATE tasks SET status = ?, error = ?, error_msg = ?, rev = ?, finished_at = ? "
                    f"WHERE id IN ({marks}){guard}",
                    (status, error, stored(error), rev, finished_at, *chunk, *only_from)).rowcount
        return moved

    def start_task(self, task_id: str, *, first_attempt: bool = False) -> bool:
        """Mark a pending task running (counting its first upstream call, if asked); False if it is no longer pending."""
        now = time.time()
        with self._tx() as db:
            rev = self._bump(db)
            changed = db.execute(
                "UPDATE tasks SET status = 'running', error = NULL, error_msg = NULL, warning = NULL, warning_msg = NULL, "
                "http_status = NULL, rev = ?, "
                "started_at = ?, finished_at = NULL WHERE id = ? AND status = 'pending'", (rev, now, task_id)).rowcount
            if changed and first_attempt:  # one transaction instead of two per task (bench)
                db.execute("UPDATE tasks SET attempts = attempts + 1 WHERE id = ?", (task_id,))
                db.execute("INSERT INTO attempts (task_id, number, started_at) VALUES (?, 1, ?)", (task_id, now))
        return bool(changed)

    def finish_task(self, task_id: str, status: str, *, error: str | None = None, http_status: int | None = None,
                    warning: str | None = None, debug_log: str | None = None, only_from: Sequence[str] = (),
                    results: Sequence[NewResult] = ()) -> None:
        """Record how a task ended, with the results it brought (optionally only if it is now in one of `only_from`)."""
        guard = f" AND status IN ({','.join('?' * len(only_from))})" if only_from else ""
        with self._tx() as db:
            if db.execute("SELECT 1 FROM tasks WHERE id = ?", (task_id,)).fetchone() is None:
                return  # deleted while its call was finishing: nothing to record
            for result in results:
                self._insert_result(db, task_id, result)
            rev = self._bump(db)
            db.execute("UPDATE tasks SET status = ?, error = ?, error_msg = ?, http_status = ?, warning = ?, "
                       f"warning_msg = ?, debug_log = ?, rev = ?, finished_at = ? WHERE id = ?{guard}",
                       (status, error, stored(error), http_status, warning, stored(warning), debug_log, rev,
                        time.time(), task_id, *only_from))

    def set_task_prompt(self, task_id: str, prompt: str) -> None:
        """Give a task a new prompt for its next calls (its results keep the prompt that made them)."""
        with self._tx() as db:
            db.execute("UPDATE tasks SET prompt = ?, rev = ? WHERE id = ?", (prompt, self._bump(db), task_id))

    def append_task(self, run_id: str, task: NewTask, *, source_sha: str | None = None,
                    parent: dict[str, Any] | None = None) -> str:
        """Add a pending task at the end of a run (a continuation of a result); return its id.

        `source_sha` names the cached result used as its source, so the cache keeps that file
        while the task exists; `parent` says where it came from (shown on the page).
        """
        task_id = new_id("t")
        with self._tx() as db:
            rev = self._bump(db)
            row = db.execute("SELECT prompt FROM runs WHERE id = ?", (run_id,)).fetchone()
            if row is None:
                raise KeyError(run_id)
            index = db.execute("SELECT COALESCE(MAX(idx), -1) + 1 FROM tasks WHERE run_id = ?", (run_id,)).fetchone()[0]
            db.execute(
                "INSERT INTO tasks (id, run_id, idx, source_name, source_path, prompt, rev, refs, output_name, overrides, "
                "source_sha, parent) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (task_id, run_id, index, task.name, task.path, row[0] if task.prompt is None else task.prompt, rev,
                 json.dumps(list(task.references)) if task.references else None, task.output_name,
                 json.dumps(task.overrides) if task.overrides else None, source_sha,
                 json.dumps(parent) if parent else None))
            db.execute("UPDATE runs SET task_count = task_count + 1 WHERE id = ?", (run_id,))
        return task_id

    def debug_log(self, task_id: str) -> str | None:
        """Return a task's last debug log."""
        row = self._db().execute("SELECT debug_log FROM tasks WHERE id = ?", (task_id,)).fetchone()
        return row[0] if row else None

    def task_run(self, task_id: str) -> str | None:
        """Return the id of the run a task belongs to."""
        row = self._db().execute("SELECT run_id FROM tasks WHERE id = ?", (task_id,)).fetchone()
        return row[0] if row else None

    def delete_task(self, task_id: str) -> list[tuple[str, str]]:
        """Delete a task (leaving a tombstone); return the (sha256, format) of its results."""
        with self._tx() as db:
            row = db.execute("SELECT run_id FROM tasks WHERE id = ?", (task_id,)).fetchone()
            if row is None:
                return []
            freed = db.execute("SELECT sha256, format FROM results WHERE task_id = ?", (task_id,)).fetchall()
            rev = self._bump(db)
            db.execute("DELETE FROM tasks WHERE id = ?", (task_id,))
            db.execute("UPDATE runs SET task_count = task_count - 1 WHERE id = ?", (row[0],))
            db.execute("INSERT INTO removed VALUES (?, ?, ?)", (row[0], task_id, rev))
        return [(r[0], r[1]) for r in freed]

    def recover_interrupted(self) -> int:
        """After a crash: running or pending tasks, but those in an active batch, become stopped ("interrupted")."""
        with self._tx() as db:
            rev = self._bump(db)
            return db.execute("UPDATE tasks SET status = 'stopped', error = ?, error_msg = ?, rev = ?, finished_at = ? "
                              "WHERE status IN ('running', 'pending') AND (batch_id IS NULL OR batch_id NOT IN "
                              "(SELECT id FROM batches WHERE finished_at IS NULL))",
                              (INTERRUPTED, stored(INTERRUPTED), rev, time.time())).rowcount

    # -- results ----------------------------------------------------------------------------

    @staticmethod
    def _insert_result(db: sqlite3.Connection, task_id: str, result: "NewResult") -> str | None:
        if db.execute("SELECT 1 FROM results WHERE task_id = ? AND sha256 = ?", (task_id, result.sha256)).fetchone():
            return None  # the same bytes again (a retry that keeps results)
        result_id = new_id("i")
        db.execute("INSERT INTO results (id, task_id, sha256, format, width, height, bytes, origin, url, created_at, prompt, "
                   "answer_text) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                   (result_id, task_id, result.sha256, result.format, result.width, result.height, result.size,
                    result.origin, result.url, time.time(), result.prompt, result.answer_text))
        return result_id

    def clear_results(self, task_id: str) -> list[tuple[str, str]]:
        """Remove a task's results; return their (sha256, format)."""
        with self._tx() as db:
            freed = db.execute("SELECT sha256, format FROM results WHERE task_id = ?", (task_id,)).fetchall()
            db.execute("DELETE FROM results WHERE task_id = ?", (task_id,))
            db.execute("UPDATE tasks SET rev = ? WHERE id = ?", (self._bump(db), task_id))
        return [(r[0], r[1]) for r in freed]

    def result(self, result_id: str) -> ResultRecord | None:
        """Return one result, or None."""
        row = self._db().execute(f"SELECT {RESULT_COLUMNS} FROM results WHERE id = ?", (result_id,)).fetchone()
        return result_record(row) if row else None

    def delete_result(self, result_id: str) -> tuple[str, str] | None:
        """Delete a result; return its (sha256, format), or None if unknown."""
        with self._tx() as db:
            row = db.execute("SELECT task_id, sha256, format FROM results WHERE id = ?", (result_id,)).fetchone()
            if row is None:
                return None
            db.execute("DELETE FROM results WHERE id = ?", (result_id,))
            db.execute("UPDATE tasks SET rev = ? WHERE id = ?", (self._bump(db), row[0]))
        return row[1], row[2]

    def is_referenced(self, sha256: str) -> bool:
        """Return True while any result uses these bytes, or a task continued from them has them as its source."""
        db = self._db()
        return (db.execute("SELECT 1 FROM results WHERE sha256 = ? LIMIT 1", (sha256,)).fetchone() is not None
                or db.execute("SELECT 1 FROM tasks WHERE source_sha = ? LIMIT 1", (sha256,)).fetchone() is not None)


class _Holder:
    """A thread's connection, weakly tracked so it closes when its thread goes away."""

    __slots__ = ("db", "__weakref__")

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __del__(self) -> None:
        try:
            self.db.close()
        except Exception:  # at interpreter exit the sqlite3 module may already be gone
            pass
