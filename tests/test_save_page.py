"""The save drawer's issue-11 parts in headless Chromium: both languages, the older console's presets, the pure helpers."""

from __future__ import annotations

import re

import pytest

from tests.helpers import make_sources
from tests.browser import ARTIFACTS, open_tab, shot, start_run, wait_count

playwright_api = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.browser
RAW_KEY = re.compile(r"\b(preset|reason|fix|layout|save)_[a-z_]+\b")  # an i18n key shown instead of its words


def test_report_helpers(page):
    checks = page.evaluate("""async () => {
        const r = await import('/static/js/report.js');
        const f = await import('/static/js/format.js');
        const task = (results) => ({ status: 'done', source_name: 'a.png', results });
        return [
            r.reasonKind({ kind: 'saved_before' }), r.isRefused('saved_before'), r.isRefused('inputs'),
            r.isRefused('no_source'),
            r.fileNames(['/o/x_target/a.png', '/o/x_target/a.txt', '/o/x_control/a.png'], '/o'),
            r.fileNames(['/o/1', '/o/2', '/o/3', '/o/4', '/o/5'], '/o'),
            r.entryDetail({ kind: 'saved_before', paths: ['/o/a.png'] }, 'saved_before', (s) => `was ${s}`, '/o'),
            r.entryDetail({ error: 'refused: no input image' }, 'no_source'),
            r.progressLine({ phase: 'writing', done: 25, total: 200, saved: 24 }),
            r.progressLine({ phase: 'planning', done: 10, total: 200, saved: 0 }),
            r.reportCounts({ saved: [{}], skipped: [{ kind: 'saved_before' }, { kind: 'aspect' }],
                             errors: [{ kind: 'inputs' }] }),
            f.matches(task([{ saved: false }]), { unsaved: true }),
            f.matches(task([{ saved: false }, { saved: true }]), { unsaved: true }),
            f.matches(task([]), { unsaved: true }),
            f.matches(task([{ saved: true }]), { unsaved: false }),
        ];
    }""")
    assert checks == [
        "saved_before", False, True, True,
        "x_target/a.png, x_target/a.txt, x_control/a.png", "1, 2, 3, 4, …", "was a.png", "no input image",
        {"key": "save_writing", "vars": {"done": 25, "total": 200, "saved": 24}, "percent": 13},
        {"key": "save_planning", "vars": {"done": 10, "total": 200, "saved": 0}, "percent": 0},
        {"saved": 1, "skipped": 1, "refused": 2},
        True, False, False, True,
    ]


@pytest.mark.parametrize("locale, label, words", [
    ("en-US", "first only, clean", ["Older console presets", "Replace in names", "Swap roles", "Zip the folder dataset/"]),
    ("zh-CN", "只保存第一张，干净命名", ["旧版控制台预设", "名称中替换", "角色互换", "把文件夹 dataset/ 里的文件"]),
])
def test_the_drawer_in_both_languages_applies_an_older_console_preset(browser, server, fake, tmp_path, locale, label,
                                                                      words):
    tab = open_tab(browser, server.url, locale=locale)
    try:
        start_run(tab, fake, make_sources(tmp_path / "src", 2))
        wait_count(tab, "done", 2)
        tab.click("#open-save")
        tab.wait_for_function("document.querySelectorAll('[data-testid=save-builtin] option').length === 6")
        tab.select_option("[data-testid=save-builtin]", label=label)
        tab.click("[data-testid=save-builtin-apply]")
        form = tab.locator("#save-form")
        assert form.locator("[name=template]").input_value() == "{src_stem}"
        assert form.locator("[name=first_only]").is_checked() and not form.locator("[name=only_selected]").is_checked()
        form.locator("[name=output_dir]").fill(str(tmp_path / "out"))
        form.locator("[name=layout]").select_option("fal_start_end")
        tab.click("#save-preview")
        tab.locator("[data-testid=save-report] .report-counts").wait_for()
        drawer = tab.inner_text("#save-drawer")
        for word in words:
            assert word in drawer, word
        assert not RAW_KEY.search(drawer), RAW_KEY.search(drawer)
        assert tab.text_content("[data-testid=save-cancel]") == {"en-US": "Cancel save", "zh-CN": "取消保存"}[locale]
        assert not (tmp_path / "out").exists()  # a preview writes nothing
        ARTIFACTS.mkdir(exist_ok=True)
        shot(tab, f"save-drawer-{locale}")
    finally:
        tab.context.close()
    assert tab.console_errors == [], tab.console_errors


def test_report_helpers_for_damaged_results_and_repairs(page):
    checks = page.evaluate("""async () => {
        const r = await import('/static/js/report.js');
        return [
            r.isRefused('damaged'), r.reasonKind({ kind: 'damaged', error: 'x.png is damaged in the cache' }),
            r.repairedLine({ repaired: { interrupted: false, unfinished: 0, items: 0, files: 0, temp_files: 3, paths: [] } }),
            r.repairedLine({ repaired: { interrupted: true, unfinished: 4, items: 2, files: 5, temp_files: 3, paths: [] } }),
            r.repairedLine({ repaired: { interrupted: true, unfinished: 3, items: 0, files: 0, temp_files: 0, paths: [] } }),
            r.repairedLine({ repaired: { interrupted: false, unfinished: 0, items: 0, files: 0, temp_files: 0, paths: [] } }),
            r.repairedLine({}),
        ];
    }""")
    assert checks == [True, "damaged", {"items": 0, "files": 0, "temps": 3}, {"items": 4, "files": 5, "temps": 3},
                      {"items": 3, "files": 0, "temps": 0}, None, None]


def test_the_folder_named_after_the_run_never_lands_in_a_field_the_person_is_typing_in(page, fake, tmp_path):
    # The drawer asks for the run before it names a folder after it. When the answer comes while the cursor is
    # in the field, the person is about to type there: what they type must not be added after the default.
    start_run(page, fake, make_sources(tmp_path / "src", 1))
    wait_count(page, "done", 1)
    run_id = page.evaluate("new URLSearchParams(location.search).get('run')")
    held = []
    page.route(re.compile(rf"/api/runs/{run_id}$"), lambda route: held.append(route))  # answered when released
    page.click("#open-save")
    page.wait_for_function("document.getElementById('save-drawer').hidden === false")
    while not held:
        page.wait_for_timeout(20)
    field = page.locator("#save-form [name=output_dir]")
    field.fill("")
    field.focus()
    with page.expect_response(re.compile(rf"/api/runs/{run_id}$")):
        for route in held:
            route.continue_()
    page.evaluate("new Promise((done) => setTimeout(done, 50))")  # the drawer has read the answer
    page.keyboard.type("/data/sets/mine")
    assert field.input_value() == "/data/sets/mine"
    page.unroute(re.compile(rf"/api/runs/{run_id}$"))
