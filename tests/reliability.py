"""Run the reliability and security tests and write RELIABILITY.md from what they measured.

    .venv/bin/python -m tests.reliability [pytest options]

The figures come from the tests themselves (tests/figures.py): nothing in the report is typed
by hand. Each test's outcome and time come from pytest's JUnit report. The report is written
whatever the outcome, and says which tests failed; the exit status is pytest's.
"""

from __future__ import annotations

import os
import platform
import sys
import tempfile
import time
import xml.etree.ElementTree as ElementTree
from pathlib import Path
from typing import Any

import pytest

from tests import figures

ROOT = Path(__file__).resolve().parent.parent
REPORT = ROOT / "RELIABILITY.md"
TESTS = ["test_faults.py", "test_crashes.py", "test_controls_load.py", "test_attacks.py", "test_ssrf.py",
         "test_exposed.py", "test_hostile.py", "test_secrets.py", "test_fuzz_routes.py", "test_file_modes.py",
         "test_full_disk.py", "test_save_crash.py", "test_save_hostile.py", "test_hostile_gateways.py",
         "test_uploads.py", "test_caption_jobs.py"]
COMMAND = ".venv/bin/python -m tests.reliability"


def main(argv: list[str] | None = None) -> int:
    """Run the tests, then write the report; return pytest's exit status."""
    figures.clear()
    with tempfile.TemporaryDirectory() as folder:
        junit = Path(folder) / "junit.xml"
        started = time.monotonic()
        status = pytest.main([*(str(ROOT / "tests" / name) for name in TESTS), "-q", f"--junitxml={junit}",
                              "-p", "no:cacheprovider", *(argv or [])])
        elapsed = time.monotonic() - started
        outcomes = read_junit(junit) if junit.exists() else []
    REPORT.write_text(render(figures.read_all(), outcomes, elapsed, int(status)), encoding="utf-8")
    print(f"wrote {REPORT.relative_to(ROOT)}")
    return int(status)


def read_junit(path: Path) -> list[tuple[str, str, float]]:
    """Return (test, outcome, seconds) for every test case in a JUnit report."""
    rows = []
    for case in ElementTree.parse(path).iter("testcase"):
        outcome = "passed"
        for child in case:
            if child.tag in ("failure", "error"):
                outcome = "failed"
            elif child.tag == "skipped":
                outcome = "skipped"
        module = case.get("classname", "").rsplit(".", 1)[-1]
        rows.append((f"{module}::{case.get('name')}", outcome, float(case.get("time", 0))))
    return rows


def render(found: dict[str, dict[str, Any]], outcomes: list[tuple[str, str, float]], elapsed: float, status: int) -> str:
    """Return the report's Markdown."""
    get = lambda name, key, default=0: found.get(name, {}).get(key, default)  # noqa: E731
    attacks = found.get("attacks", {})
    refused_attacks = sum(v for k, v in attacks.items() if not k.startswith("_") and isinstance(v, int))
    ssrf = get("ssrf", "refused") + get("ssrf", "rebinding_attempts_refused")
    server_errors = sum(get(name, "server_errors") for name in ("faults", "crashes", "controls", "fuzz"))
    failed = [name for name, outcome, _ in outcomes if outcome != "passed"]
    kinds = ", ".join(f"{kind} {count}" for kind, count in get("faults", "fault_kinds", {}).items())
    lines = [
        "# Reliability and security: measured",
        "",
        f"Written by `{COMMAND}` on {time.strftime('%Y-%m-%d %H:%M')} ({platform.system()}, "
        f"Python {platform.python_version()}, {os.cpu_count()} cores): {len(outcomes)} tests, "
        f"{len(outcomes) - len(failed)} passed, {len(failed)} failed, in {elapsed:.0f} s. Every number below was "
        "counted by the tests in that run (tests/figures.py); none is typed by hand.",
        "",
    ]
    if failed:
        lines += ["**Failed in this run** (the figures of these tests may be missing or partial):", ""]
        lines += [f"- `{name}`" for name in failed] + [""]
    lines += [
        "## The figures",
        "",
        "| what | measured |",
        "|---|---|",
        f"| tasks run against a gateway failing at random | {get('faults', 'tasks')} tasks, {get('faults', 'calls')} calls, "
        f"concurrency {get('faults', 'concurrency')}, max_retries {get('faults', 'max_retries')}, {get('faults', 'seconds')} s |",
        f"| faults injected | {get('faults', 'faults_injected')} ({kinds}) |",
        f"| retries, each checked against the policy | {get('faults', 'retries')} |",
        f"| task outcomes | {get('faults', 'done')} done, {get('faults', 'failed')} failed with a readable reason, "
        f"**{get('faults', 'stuck')} stuck** |",
        f"| crashes survived (`kill -9` at random moments, restarted each time) | **{get('crashes', 'crashes_survived')}** "
        f"of {get('crashes', 'kills')}; integrity_check ok {get('crashes', 'integrity_checks_ok')} times |",
        f"| duplicate paid calls after a crash (a task already done, called again) | "
        f"**{get('crashes', 'duplicate_paid_calls', '–')}** of {get('crashes', 'paid_calls')} calls |",
        f"| calls lost in flight by the kills, redone on resume | {get('crashes', 'calls_lost_in_flight')} |",
        f"| a full data disk mid-run ({get('full_disk', 'tasks')} tasks, concurrency {get('full_disk', 'concurrency')}), "
        f"resumed after freeing space | **{get('full_disk', 'paid_twice', '–')}** calls paid twice of "
        f"{get('full_disk', 'calls')}; {get('full_disk', 'answers_held')} answers held in memory and stored on resume; "
        f"a read-only cache folder: **{get('full_disk', 'read_only_paid_twice', '–')}** paid twice |",
        f"| `kill -9` during a save of {get('save_crash', 'pairs')} ai-toolkit pairs (after "
        f"{get('save_crash', 'written_when_killed')} written), then the same save again | "
        f"{get('save_crash', 'kept_from_crashed_save')} items kept (listed before the kill), "
        f"{get('save_crash', 'half_written_repaired')} unlisted or half-written ones undone and written again, "
        f"{get('save_crash', 'temp_files_removed')} temporary files removed; "
        f"**{get('save_crash', 'pairs_whole_after_resume')}** whole pairs, "
        f"{get('save_crash', 'manifest_lines')} manifest lines, {get('save_crash', 'saved_marks')} saved marks, "
        f"{get('save_crash', 'temp_files_after_resume')} temporary files left |",
        f"| a manifest that cannot be written (full output disk) during a save of {get('save_manifest_full', 'pairs')} "
        f"pairs | {get('save_manifest_full', 'files_unlisted_when_full')} files left unlisted; the next save wrote "
        f"{get('save_manifest_full', 'written_by_next_save')}, **{get('save_manifest_full', 'written_twice', '–')}** twice |",
        f"| partial files left by the kills, removed at the next start | {get('crashes', 'partial_files_swept')} |",
        f"| controls fired from {get('controls', 'threads')} threads for {get('controls', 'seconds')} s during runs | "
        f"{get('controls', 'requests')} requests, **{get('controls', 'deadlocks', '–')} deadlocks**, "
        f"**{get('controls', 'stuck', '–')} stuck**, slowest answer {get('controls', 'slowest_answer_s', '–')} s |",
        f"| 5xx answers (fault run, crash polls, controls, fuzzing) | **{server_errors}** |",
        f"| web attacks refused | **{refused_attacks}** ({describe(attacks)}) |",
        f"| SSRF attempts refused | **{ssrf}**, canary on 127.0.0.2 hit 0 times |",
        f"| hostile files and answers refused with a clear error | {get('hostile', 'refused')}; server peak memory "
        f"{get('hostile', 'server_peak_rss_mib', '–')} MiB (idle {get('hostile', 'idle_rss_mib', '–')} MiB) |",
        f"| sources rewritten while read | {get('hostile', 'moving_sources')} tasks over "
        f"{get('hostile', 'moving_source_rewrites')} rewrites: {get('hostile', 'moving_sources_failed')} failed "
        "readably, the rest sent whole images |",
        f"| a {get('uploads', 'upload_mib')} MiB upload through a real server "
        f"({get('uploads', 'upload_mib_per_s')} MiB/s) | the server's peak memory grew by "
        f"**{get('uploads', 'server_peak_growth_mib', '–')} MiB** (streamed to disk) |",
        f"| a broken deployment behind a router's cooldown ({get('hostile_gateways', 'router_cooldown_tasks')} tasks, "
        f"rate-limit patience {get('hostile_gateways', 'router_cooldown_rate_limit_wait_s')} s) | every task failed with "
        f"the real error in {get('hostile_gateways', 'router_cooldown_seconds_to_fail_all')} s, "
        f"{get('hostile_gateways', 'router_cooldown_calls')} calls |",
        f"| {get('hostile_gateways', 'streams_at_once')} endless answers of {get('hostile_gateways', 'stream_cap_mib')} MiB "
        f"each, answers' budget {get('hostile_gateways', 'budget_mib')} MiB | "
        f"{get('hostile_gateways', 'bounded_peak_held_mib')} MiB held, peak RSS {get('hostile_gateways', 'bounded_max_rss_mib')} "
        f"MiB (without the budget: {get('hostile_gateways', 'unbounded_peak_held_mib')} MiB held) |",
        f"| {get('hostile_gateways', 'half_open_connections')} half-open connections, thread cap "
        f"{get('hostile_gateways', 'request_thread_cap')} | server threads peak "
        f"{get('hostile_gateways', 'server_threads_peak_half_open')}, "
        f"{get('hostile_gateways', 'server_threads_after_header_timeout')} after the header deadline |",
        f"| a captioning job cancelled mid-way ({get('caption_cancel', 'results')} results) | hung up in "
        f"{get('caption_cancel', 'cancel_s')} s; **{get('caption_cancel', 'calls_after_cancel', '–')}** calls after; "
        f"{get('caption_cancel', 'captions_kept')} captions kept |",
        f"| `kill -9` mid captioning job ({get('caption_kill', 'results')} results) | "
        f"{get('caption_kill', 'written_before_kill')} captions kept from {get('caption_kill', 'calls_before_kill')} calls; "
        f"a new job called {get('caption_kill', 'calls_after_restart')}, "
        f"**{get('caption_kill', 'calls_repeated', '–')}** repeated |",
        f"| a data folder that fills during a captioning job ({get('caption_full_disk', 'results')} results) | "
        f"stopped with the reason after {get('caption_full_disk', 'captioned_before_full')} captions "
        f"({get('caption_full_disk', 'calls_before_stop')} calls; {get('caption_full_disk', 'held_when_full')} answer(s) "
        f"held in memory); after freeing, a new job wrote the held ones without a call and called "
        f"{get('caption_full_disk', 'calls_after_free')} for the rest |",
        f"| fuzzed requests, every route | {get('fuzz', 'requests')} on {get('fuzz', 'routes')} routes, "
        f"**{get('fuzz', 'server_errors', '–')} 5xx** |",
        f"| credentials in extra headers and URL queries ({get('secrets', 'header_query_kinds')} kinds) leaked | "
        f"**{get('secrets', 'header_query_leaks', '–')}** in {get('secrets', 'header_query_answers_checked')} answers, "
        "logs, debug logs and exports |",
        f"| key leaks (answers, logs, debug logs, exports, saved files, artifacts) | "
        f"**{get('secrets', 'leaks', '–')}** in {get('secrets', 'answers_checked')} answers, "
        f"{get('secrets', 'files_checked')} files, {get('secrets', 'artifacts_checked')} artifacts |",
        f"| … of a key a careless gateway quoted back in its error | **{get('secrets', 'quoted_key_leaks', '–')}** "
        "answers or files |",
        f"| files that may hold a key, owner-only | {get('files', 'files_checked')} files 0600 in a 0700 folder; "
        f"{get('files', 'loose_files_seen')} seen looser in {get('files', 'mode_polls')} polls while they were written |",
        "",
        "## Each test",
        "",
        "| test | outcome | seconds |",
        "|---|---|---|",
    ]
    lines += [f"| `{name}` | {outcome} | {seconds:.1f} |" for name, outcome, seconds in grouped(outcomes)]
    lines += ["", f"pytest exit status: {status}.", ""]
    return "\n".join(lines)


def grouped(outcomes: list[tuple[str, str, float]]) -> list[tuple[str, str, float]]:
    """Fold the cases of a parametrized test into one row: "3 passed, 1 failed (4 cases)"."""
    rows: dict[str, list[tuple[str, float]]] = {}
    for name, outcome, seconds in outcomes:
        rows.setdefault(name.split("[", 1)[0], []).append((outcome, seconds))
    folded = []
    for name, cases in rows.items():
        counts = {outcome: sum(1 for o, _ in cases if o == outcome) for outcome in ("passed", "failed", "skipped")}
        said = ", ".join(f"{n} {o}" for o, n in counts.items() if n) if len(cases) > 1 else cases[0][0]
        folded.append((name + (f" ({len(cases)} cases)" if len(cases) > 1 else ""), said, sum(s for _, s in cases)))
    return folded


def describe(counts: dict[str, Any]) -> str:
    return ", ".join(f"{key.replace('_', ' ')} {value}" for key, value in sorted(counts.items())
                     if not key.startswith("_") and isinstance(value, int))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
