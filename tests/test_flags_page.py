"""The review flags on the page: the pure helpers that filter, count and order by flag, and the address that keeps them.

The helpers run in Debian's Chromium as the page loads them (ES modules from the real server); the
journey in test_journeys.py drives the same parts through the grid, the viewer and the selection bar.
"""

from __future__ import annotations

import os
import time
from urllib.parse import parse_qs, urlparse

import pytest

from tests.browser import cards, open_tab, start_run, wait_count
from tests.helpers import make_sources
from testkit.server_process import ServerProcess

playwright_api = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.browser


def helpers(page, script: str):
    """Run `script` (an expression of `f`, format.js, and `a`, address.js) in the page; return its value."""
    return page.evaluate(f"""async () => {{
        const f = await import('/static/js/format.js');
        const a = await import('/static/js/address.js');
        return {script};
    }}""")


TASKS = """[
    {id: 't0', index: 0, status: 'done', source_name: 'a.jpg',
     results: [{id: 'r0', flags: [], flags_checked: true}]},
    {id: 't1', index: 1, status: 'done', source_name: 'b.jpg',
     results: [{id: 'r1', flags: ['blank'], flags_checked: true}, {id: 'r1b', flags: [], flags_checked: true}]},
    {id: 't2', index: 2, status: 'done', source_name: 'c.jpg',
     results: [{id: 'r2', flags: ['unrelated', 'near_duplicate'], flags_checked: true}]},
    {id: 't3', index: 3, status: 'done', source_name: 'd.jpg', results: [{id: 'r3', flags_checked: false}]},
    {id: 't4', index: 4, status: 'failed', source_name: 'e.jpg', results: []},
    {id: 't5', index: 5, status: 'done', source_name: 'f.jpg',
     results: [{id: 'r5', flags: ['near_duplicate', 'unrelated'], flags_checked: true}]},
]"""


def test_a_task_matches_a_flag_when_one_of_its_results_carries_it(page):
    shown = helpers(page, f"""(() => {{
        const tasks = {TASKS};
        const base = {{status: '', q: '', selection: '', hasResults: false, unsaved: false}};
        const pick = (flag, extra = {{}}) => tasks.filter((t) => f.matches(t, {{...base, flag, ...extra}})).map((t) => t.id);
        return {{none: pick(''), any: pick('any'), blank: pick('blank'), dup: pick('near_duplicate'),
                 unchanged: pick('unchanged'), dupFailed: pick('near_duplicate', {{status: 'failed'}}),
                 blankNamed: pick('blank', {{q: 'c.jpg'}})}};
    }})()""")
    assert shown == {"none": ["t0", "t1", "t2", "t3", "t4", "t5"], "any": ["t1", "t2", "t5"], "blank": ["t1"],
                     "dup": ["t2", "t5"], "unchanged": [], "dupFailed": [], "blankNamed": []}


def test_the_results_still_waiting_for_a_look_are_counted(page):
    assert helpers(page, f"[f.uncheckedCount({TASKS}), f.uncheckedCount([])]") == [1, 0]


def test_a_changed_reason_changes_the_signature_the_chips_redraw_on(page):
    signatures = helpers(page, """[
        {flags: ['near_duplicate'], flag_reasons: {near_duplicate: 'the same picture as task #2'}},
        {flags: ['near_duplicate'], flag_reasons: {near_duplicate: 'the same picture as task #5'}},
        {flags: [], flag_reasons: {}}, {flags_checked: false}].map(f.flagSignature)""")
    assert len(set(signatures[:2])) == 2 and signatures[2:] == ["", ""]


def test_flagged_first_keeps_each_part_in_task_order(page):
    order = helpers(page, f"""(() => {{
        const tasks = new Map({TASKS}.map((t) => [t.id, t]));
        return [f.flaggedFirst(['t0', 't1', 't2', 't3', 't4', 't5'], tasks), f.flaggedFirst(['t0', 't3'], tasks),
                f.flaggedFirst([], tasks)];
    }})()""")
    assert order == [["t1", "t2", "t5", "t0", "t3", "t4"], ["t0", "t3"], []]


def test_the_address_keeps_the_flag_filter_and_the_order(page):
    seen = helpers(page, """(() => {
        const filters = {status: 'done', q: '', selection: '', hasResults: false, unsaved: false,
                         flag: 'near_duplicate', flaggedFirst: true};
        const search = a.formatAddress({runId: 'r1', filters});
        return {search, back: a.parseAddress(search).filters, plain: a.formatAddress({runId: 'r1', filters: {}}),
                unknown: a.parseAddress('?run=r1&flag=ugly&sort=whatever').filters,
                any: a.parseAddress('?run=r1&flag=any').filters.flag};
    })()""")
    assert seen["search"] == "?run=r1&status=done&flag=near_duplicate&sort=flagged"
    assert seen["back"]["flag"] == "near_duplicate" and seen["back"]["flaggedFirst"] is True
    assert seen["plain"] == "?run=r1"
    assert seen["unknown"]["flag"] == "" and seen["unknown"]["flaggedFirst"] is False
    assert seen["any"] == "any"


def test_with_the_flags_off_nothing_says_it_is_checking(browser, fake, tmp_path):
    """REVIEW_FLAGS=0 leaves every result waiting for a look: the page must not say it is looking."""
    server = ServerProcess(tmp_path / "data", env={**os.environ, "REVIEW_FLAGS": "0"})
    try:
        tab = open_tab(browser, server.url)
        start_run(tab, fake, make_sources(tmp_path / "src", 3))
        wait_count(tab, "done", 3)
        run_id = parse_qs(urlparse(tab.url).query)["run"][0]
        listing = server.get(f"/api/runs/{run_id}/tasks").json()
        assert [r["flags_checked"] for task in listing["tasks"] for r in task["results"]] == [False] * 6
        time.sleep(1.5)  # a poll or two more
        assert tab.locator("[data-testid=flags-checking]").is_hidden()
        assert tab.locator("[data-testid=flag-filter] option[value=any]").inner_text() == "Flagged (0)"
        assert cards(tab).locator(".flag").count() == 0
        assert tab.console_errors == []
        tab.context.close()
    finally:
        server.stop()
