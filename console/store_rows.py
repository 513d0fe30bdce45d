"""A task's or a result's row of the store read back as its record: the columns read, and how each becomes a field."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from .messages import restored
from .records import ResultRecord, TaskRecord
from .store_flags import flag_names, flag_reasons

TASK_COLUMNS = ("id, run_id, idx, source_name, source_path, prompt, status, attempts, http_status, error, warning, rev, "
                "refs, output_name, overrides, parent, batch_id, error_msg, warning_msg")
RESULT_COLUMNS = "id, task_id, sha256, format, width, height, bytes, origin, selected, prompt, flags"
RESULT_COLUMNS += ", caption, answer_text"
RESULT_COLUMNS += ", EXISTS(SELECT 1 FROM saves WHERE saves.result_id = results.id) AS saved"  # the "saved" mark
RESULT_COLUMNS += ", flag_msgs"  # the codes of the flags' reasons


def task_record(row: sqlite3.Row, results: tuple[ResultRecord, ...], spend: dict[str, Any] | None = None) -> TaskRecord:
    (task_id, run_id, index, source_name, source_path, prompt, status, attempts, http_status, error, warning, rev,
     refs, output_name, overrides, parent, batch_id, error_msg, warning_msg) = row
    return TaskRecord(task_id, run_id, index, source_name, source_path, prompt, status, attempts, http_status,
                      restored(error, error_msg), restored(warning, warning_msg), rev, output_name,
                      tuple(json.loads(refs)) if refs else (), json.loads(overrides) if overrides else {},
                      json.loads(parent) if parent else None, results, spend, batch_id if status == "running" else None)


def result_record(row: sqlite3.Row) -> ResultRecord:
    (result_id, task_id, sha256, fmt, width, height, size, origin, selected, prompt, flags, caption, answer_text,
     saved, flag_msgs) = row
    reasons = flag_reasons(flags, flag_msgs)
    return ResultRecord(result_id, task_id, width, height, fmt, sha256, size, origin, prompt, caption, answer_text,
                        bool(selected), bool(saved), flag_names(reasons), reasons, flags is not None)
