"""The review page in headless Chromium (Debian's) against the real server and the fake gateway."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.browser import CHAT, cards, fill_profile, open_tab, shot, start_run, wait_count
from tests.helpers import make_sources
from testkit.images import make
from testkit.server_process import ServerProcess

playwright_api = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.browser



def test_start_a_run_and_watch_results_arrive(page, fake, server, tmp_path):
    folder = make_sources(tmp_path / "src", 6)
    page.fill("[data-testid=path-input]", str(folder))
    page.click("#scan")
    page.wait_for_selector("#scan-output:not([hidden])")
    assert "6 images found" in page.inner_text("#scan-output")
    start_run(page, fake, folder)
    page.wait_for_function("document.querySelectorAll('[data-testid=task-card][data-status=done]').length === 6")
    assert page.locator("[data-testid=result-image]").count() == 12
    assert re.search(r"Done 6", page.inner_text("[data-testid=progress]"))
    page.wait_for_function("[...document.querySelectorAll('[data-testid=result-image]')].every("
                           "(img) => img.complete && img.naturalWidth > 0)")  # real thumbnails, decoded
    shot(page, "main-results")


def test_filters_and_search(page, fake, tmp_path):
    start_run(page, fake, make_sources(tmp_path / "src", 12))
    wait_count(page, "done", 12)
    page.click("#counts [data-status=failed]")
    page.wait_for_selector("#empty:not([hidden])")
    assert cards(page).count() == 0
    page.click("#counts [data-status='']")
    page.fill("#filter-q", "img1")
    page.wait_for_function("document.querySelectorAll('[data-testid=task-card]').length === 4")
    names = sorted(page.locator("[data-testid=task-card] .name").all_inner_texts())
    assert names == ["img1.png", "img10.png", "img11.png", "img12.png"]
    shot(page, "filtered")


def test_viewer_keyboard_select_and_close(page, fake, server, tmp_path):
    start_run(page, fake, make_sources(tmp_path / "src", 3))
    page.wait_for_function("document.querySelectorAll('[data-testid=task-card][data-status=done]').length === 3")
    page.locator("[data-testid=result-image]").first.click()
    viewer = page.locator("[data-testid=viewer]")
    viewer.wait_for(state="visible")
    assert "1. img1.png" in page.inner_text(".viewer-title")
    page.keyboard.press("ArrowRight")
    assert "2. img2.png" in page.inner_text(".viewer-title")
    page.keyboard.press("ArrowDown")
    assert page.inner_text(".viewer-result-info").startswith("2/2")
    with page.expect_response(lambda r: "/api/results/" in r.url and r.request.method == "PATCH"):
        page.keyboard.press(" ")  # selects, and moves on to the next task
    assert "3. img3.png" in page.inner_text(".viewer-title")
    task = next(t for t in server.get(f"/api/runs/{run_id(server)}/tasks").json()["tasks"] if t["source_name"] == "img2.png")
    assert [r["selected"] for r in task["results"]] == [False, True]
    page.keyboard.press("ArrowLeft")
    page.keyboard.press("ArrowDown")  # back on img2's second result: its mark shows
    page.wait_for_function("document.querySelector('.viewer-result-info').textContent.includes('✓')")
    page.keyboard.press("n")  # next unreviewed: img3 (img1 has no selection either, but it comes after)
    assert "3. img3.png" in page.inner_text(".viewer-title")
    page.click("[data-viewer=mode]")
    shot(page, "viewer-slider")
    page.keyboard.press("Escape")
    viewer.wait_for(state="hidden")


def run_id(server) -> str:
    return server.get("/api/runs").json()[0]["id"]


def test_select_and_deselect_with_the_checkbox(page, fake, server, tmp_path):
    start_run(page, fake, make_sources(tmp_path / "src", 1))
    page.wait_for_selector("[data-testid=task-card][data-status=done]")
    box = page.locator("[data-testid=result-select]").first
    box.check()
    page.wait_for_selector(".result.is-selected")
    assert server.get(f"/api/runs/{run_id(server)}/tasks").json()["tasks"][0]["results"][0]["selected"] is True
    page.locator("[data-testid=result-select]").first.uncheck()
    page.wait_for_selector(".result.is-selected", state="detached")
    assert server.get(f"/api/runs/{run_id(server)}/tasks").json()["tasks"][0]["results"][0]["selected"] is False


def test_retry_and_delete(page, fake, server, tmp_path):
    start_run(page, fake, make_sources(tmp_path / "src", 2))
    page.wait_for_function("document.querySelectorAll('[data-testid=task-card][data-status=done]').length === 2")
    first = cards(page).first
    first.locator("[data-action=retry-keep]").click()
    page.wait_for_function("document.querySelector('[data-testid=task-card] .attempts').textContent.startsWith('2')")
    first.locator("[data-action=delete-result]").first.click()
    page.wait_for_function("document.querySelectorAll('[data-testid=task-card]')[0].querySelectorAll('[data-testid=result-image]').length === 1")
    cards(page).nth(1).locator("[data-action=delete-task]").click()
    page.wait_for_function("document.querySelectorAll('[data-testid=task-card]').length === 1")
    assert len(server.get(f"/api/runs/{run_id(server)}/tasks").json()["tasks"]) == 1


def test_failed_task_shows_the_error_and_the_debug_log(page, fake, tmp_path):
    start_run(page, fake, make_sources(tmp_path / "src", 1), scenario="err_401_g16")
    page.wait_for_selector("[data-testid=task-card][data-status=failed]")
    assert "HTTP 401: Invalid authentication token" in page.inner_text("[data-testid=task-card] .error")
    page.click("[data-testid=task-card] [data-action=debug]")
    page.wait_for_selector("#debug-drawer:not([hidden])")
    assert "← HTTP 401" in page.inner_text("#debug-text")
    shot(page, "failed-debug")


def test_emergency_stop(page, fake, tmp_path):
    start_run(page, fake, make_sources(tmp_path / "src", 4), scenario="stall")
    page.wait_for_function("document.querySelectorAll('[data-testid=task-card][data-status=running]').length === 4")
    page.click("[data-testid=stop-all]")
    page.wait_for_function("document.querySelectorAll('[data-testid=task-card][data-status=stopped]').length === 4",
                           timeout=5000)
    assert fake.wait_for_connections(0, 2)


def test_bad_input_shows_the_server_message(page, fake):
    fill_profile(page, fake, "g3_stream_dataurl")
    page.fill("[data-testid=path-input]", "relative/path")
    page.fill("[data-testid=prompt-input]", "p")
    page.click("[data-testid=start-run]")
    toast = page.locator(".toast-error")
    toast.wait_for()
    assert "absolute" in toast.inner_text()
    # Chromium logs every 4xx answer; this one is the point of the test.
    page.console_errors[:] = [e for e in page.console_errors if "status of 400" not in e]


def test_language_switch_is_remembered(page, server):
    assert page.inner_text("[data-testid=start-run]") == "Start run"
    page.click("[data-testid=lang-switch]")
    assert page.inner_text("[data-testid=start-run]") == "开始"
    shot(page, "chinese")
    page.reload()
    page.wait_for_selector("body[data-ready=true]")
    assert page.inner_text("[data-testid=start-run]") == "开始"
    page.click("[data-testid=lang-switch]")
    assert page.inner_text("[data-testid=start-run]") == "Start run"


MASK = "\u2022" * 8


def api_bodies(page, path_part: str) -> list[dict]:
    """Record the JSON bodies the page sends to URLs containing `path_part` (a live list)."""
    bodies: list[dict] = []
    page.on("request", lambda r: bodies.append(json.loads(r.post_data or "{}"))
            if path_part in r.url and r.method in ("POST", "PUT") else None)
    return bodies


def open_profile(page) -> None:
    if not page.locator("#api-form").is_visible():
        page.click("#api-panel > summary")


def test_api_key_is_never_shown_nor_sent_back_masked(page, server):
    open_profile(page)
    key = page.locator("[data-testid=api-key]")
    assert key.get_attribute("placeholder") == "No key stored"
    page.fill("[data-testid=api-url]", "http://127.0.0.1:8000/v1")
    key.fill("sk-page-secret")
    page.click("[data-testid=save-settings]")
    page.wait_for_selector(".toast-ok")
    page.reload()
    page.wait_for_selector("body[data-ready=true]")
    open_profile(page)
    assert key.input_value() == "" and "sk-page-secret" not in page.content() and MASK not in page.content()
    assert key.get_attribute("placeholder") == "Key stored — type to replace"
    shot(page, "key-stored")
    sent = api_bodies(page, "/api/settings")
    page.fill("[data-testid=api-model]", "m2")
    page.click("[data-testid=save-settings]")  # the key field is empty: the stored key stays
    page.wait_for_function("document.querySelectorAll('.toast-ok').length > 0")
    assert "api_key" not in sent[-1]["api"] and sent[-1]["api"]["model"] == "m2"
    assert server.get("/api/settings").json()["api"]["api_key"] == MASK
    assert key.input_value() == ""
    key.fill("sk-new")  # typing replaces it
    with page.expect_response(lambda r: r.url.endswith("/api/settings") and r.request.method == "PUT"):
        page.click("[data-testid=save-settings]")  # (the last save's toast may still show: wait for this answer)
    page.wait_for_function("document.querySelector('[data-testid=api-key]').value === ''")
    assert sent[-1]["api"]["api_key"] == "sk-new" and key.input_value() == ""
    page.click("#key-clear")  # clearing sends "" on purpose
    page.wait_for_function("document.querySelector('[data-testid=api-key]').placeholder === 'No key stored'")
    assert sent[-1] == {"api": {"api_key": ""}}
    assert server.get("/api/settings").json()["api"]["api_key"] == ""
    page.click("[data-testid=lang-switch]")
    assert key.get_attribute("placeholder") == "未保存密钥"
    page.click("[data-testid=lang-switch]")


def test_applying_an_api_preset_stores_it_key_included(page, server):
    assert server.http.put("/api/presets/api/gateway", json={
        "api_url": "http://127.0.0.1:9/v1", "api_key": "sk-preset", "model": "preset-model"}).status_code == 200
    page.reload()
    page.wait_for_selector("body[data-ready=true]")
    open_profile(page)
    sent = api_bodies(page, "/api/presets/")
    page.select_option("[data-testid=api-preset]", "gateway")
    page.click("[data-testid=api-preset-apply]")
    page.wait_for_function("document.querySelector('[data-testid=api-model]').value === 'preset-model'")
    assert sent == [{}]
    assert page.input_value("[data-testid=api-key]") == ""
    assert page.get_attribute("[data-testid=api-key]", "placeholder").startswith("Key stored")
    stored = server.get("/api/settings").json()["api"]
    assert stored["api_url"] == "http://127.0.0.1:9/v1" and stored["api_key"] == MASK
    page.fill("[data-testid=api-model]", "changed")  # saving the preset again keeps its key
    page.remove_listener("dialog", page.accept_dialog)
    page.once("dialog", lambda dialog: dialog.accept("gateway"))
    page.click("[data-testid=api-preset-save]")
    page.wait_for_function("document.querySelectorAll('.toast-ok').length > 1")
    assert "api_key" not in sent[-1] and sent[-1]["model"] == "changed"
    preset = server.get("/api/presets").json()["api"]["gateway"]
    assert preset["model"] == "changed" and preset["api_key"] == MASK


def test_presets_and_test_connection(page, fake, server):
    fill_profile(page, fake, "g3_stream_dataurl")
    page.remove_listener("dialog", page.accept_dialog)
    page.once("dialog", lambda dialog: dialog.accept("local gateway"))
    page.click("#api-preset-save")
    page.on("dialog", page.accept_dialog)
    page.wait_for_function("[...document.querySelectorAll('#api-preset option')].some(o => o.value === 'local gateway')")
    assert server.get("/api/presets").json()["api"]["local gateway"]["model"] == "grok-imagine-1.0-edit"
    page.fill("#api-form [name=model]", "something-else")
    page.select_option("#api-preset", "local gateway")
    page.click("#api-preset-apply")
    page.wait_for_function("document.querySelector('#api-form [name=model]').value === 'grok-imagine-1.0-edit'")
    page.click("#test-connection")
    page.wait_for_function("document.querySelector('#connection-output').textContent.startsWith('Connected')")
    assert "grok" in page.inner_text("#connection-output")
    page.click("#api-preset-delete")
    page.wait_for_function("![...document.querySelectorAll('#api-preset option')].some(o => o.value === 'local gateway')")


def test_history_switch_delete_and_live_concurrency(page, fake, server, tmp_path):
    start_run(page, fake, make_sources(tmp_path / "a", 2))
    wait_count(page, "done", 2)
    page.fill("[data-testid=prompt-input]", "second run")
    fill_profile(page, fake, "stall")
    page.fill("[data-testid=path-input]", str(make_sources(tmp_path / "b", 6)))
    page.click("[data-testid=start-run]")
    page.wait_for_function("document.querySelector('#run-title').textContent === 'second run'")
    page.fill("#run-concurrency", "6")
    page.dispatch_event("#run-concurrency", "change")
    wait_count(page, "running", 6)
    assert page.locator("#history .history-item").count() == 2
    page.locator("#history .history-item").nth(1).locator("button.link").click()
    page.wait_for_function("document.querySelector('#run-title').textContent === 'make it blue'")
    wait_count(page, "done", 2)
    page.locator("#history .history-item").nth(0).locator("button.danger").click()
    page.wait_for_function("document.querySelectorAll('#history .history-item').length === 1")
    assert fake.wait_for_connections(0, 3)


def test_updates_keep_the_scroll_position_and_open_drawers(page, fake, server, tmp_path):
    start_run(page, fake, make_sources(tmp_path / "src", 40), scenario="latency.s=0.2")
    page.wait_for_selector("[data-testid=task-card]")
    page.evaluate("document.getElementById('grid').scrollTop = 2000")
    page.click("#open-save")
    wait_count(page, "done", 40)
    assert page.evaluate("document.getElementById('grid').scrollTop") == 2000
    assert page.is_visible("#save-drawer")
    assert page.locator("[data-testid=task-card]").count() < 40  # only rows near the screen exist


def test_save_panel_preview_then_save_pairs(page, fake, server, tmp_path):
    start_run(page, fake, make_sources(tmp_path / "src", 2))
    wait_count(page, "done", 2)
    page.locator("[data-testid=result-select]").first.check()
    page.wait_for_selector(".result.is-selected")
    page.click("#open-save")
    out = tmp_path / "datasets"
    page.fill("#save-form [name=output_dir]", str(out))
    page.select_option("#save-form [name=layout]", "aitoolkit_edit")
    page.fill("#save-form [name=name]", "blue")
    page.select_option("#save-form [name=conform]", "resize")  # the sources are 16x12, the results 64x48
    page.click("#save-preview")
    page.wait_for_function("document.querySelector('#save-output').textContent.includes('would be written')")
    assert not out.exists()  # a dry run writes nothing
    page.click("#save-form [type=submit]")
    page.wait_for_function("document.querySelector('#save-output .report-counts').textContent.startsWith('1 saved')")
    assert sorted(p.name for p in (out / "blue_target").iterdir()) == ["img1.png", "img1.txt"]
    assert sorted(p.name for p in (out / "blue_control").iterdir()) == ["img1.png"]
    assert (out / "blue_target" / "img1.txt").read_text(encoding="utf-8").strip() == "make it blue"
    shot(page, "save-panel")


def test_chinese_browser_gets_chinese(browser, server):
    # bypass_csp: Playwright's string predicates run through eval, which the page's policy forbids
    context = browser.new_context(locale="zh-CN", bypass_csp=True)
    tab = context.new_page()
    tab.goto(server.url)
    tab.wait_for_selector("body[data-ready=true]", timeout=10_000)
    assert tab.inner_text("[data-testid=start-run]") == "开始"
    assert tab.evaluate("document.documentElement.lang") == "zh-CN"
    context.close()


def test_viewer_zoom_and_pan(page, fake, tmp_path):
    start_run(page, fake, make_sources(tmp_path / "src", 1))
    wait_count(page, "done", 1)
    page.locator("[data-testid=result-image]").first.click()
    page.click("[data-viewer=zoom-in]")
    page.click("[data-viewer=zoom-in]")
    box = page.locator(".viewer-stage").bounding_box()
    page.mouse.move(box["x"] + 200, box["y"] + 200)
    page.mouse.down()
    page.mouse.move(box["x"] + 260, box["y"] + 230)
    page.mouse.up()
    transform = page.evaluate("document.querySelector('[data-testid=viewer-result]').style.transform")
    assert transform == "translate(60px, 30px) scale(1.5625)"
    page.click("[data-viewer=fit]")
    assert "scale(1)" in page.evaluate("document.querySelector('[data-testid=viewer-result]').style.transform")


# -- a new user's first run -------------------------------------------------------------------------

def inside(box: dict, frame: dict) -> bool:
    return (box["x"] >= frame["x"] - 0.5 and box["y"] >= frame["y"] - 0.5
            and box["x"] + box["width"] <= frame["x"] + frame["width"] + 0.5
            and box["y"] + box["height"] <= frame["y"] + frame["height"] + 0.5)


def overlap(a: dict, b: dict) -> bool:
    return not (a["x"] + a["width"] <= b["x"] or b["x"] + b["width"] <= a["x"]
                or a["y"] + a["height"] <= b["y"] or b["y"] + b["height"] <= a["y"])


def test_first_start_guides_and_start_fits_a_laptop_screen(browser, server, fake, tmp_path):
    tab = open_tab(browser, server.url, viewport={"width": 1366, "height": 768})
    guide = tab.locator("[data-testid=guided-start]")
    assert guide.is_visible()
    assert tab.locator("[data-step='1']").get_attribute("class") == "is-current"
    start = tab.locator("[data-testid=start-run]").bounding_box()
    assert inside(start, {"x": 0, "y": 0, "width": 1366, "height": 768}), start
    assert tab.evaluate("[window.scrollY, document.querySelector('.sidebar').scrollTop]") == [0, 0]
    # The profile shows what a first run needs; the rest folds under Advanced.
    for name in ("api_url", "api_key", "model", "api_mode", "stream", "concurrency", "max_retries", "timeout_s",
                 "allow_private_api"):
        assert tab.locator(f"#api-form [name={name}]").count() == 1
        assert tab.evaluate(f"!document.querySelector('#api-form [name={name}]').closest('details.advanced')"), name
    for name in ("system_prompt", "temperature", "token_field", "max_tokens", "n", "size", "response_format",
                 "edit_format", "source_max_side", "source_max_bytes", "extra_headers", "extra_body",
                 "rewrite_result_host", "allow_private_downloads"):
        assert not tab.locator(f"#api-form [name={name}]").is_visible(), name
    assert tab.locator("[data-testid=advanced]").get_attribute("open") is None
    shot(tab, "first-start-1366")
    # The current step follows what the person does.
    tab.click("[data-guide='1']")
    assert tab.evaluate("document.activeElement.name") == "api_url"
    fill_profile(tab, fake, "g3_stream_dataurl")
    tab.click("[data-testid=test-connection]")
    tab.wait_for_selector("[data-step='2'].is-current")
    assert "is-done" in tab.locator("[data-step='1']").get_attribute("class")
    tab.fill("[data-testid=path-input]", str(make_sources(tmp_path / "src", 1)))
    tab.wait_for_selector("[data-step='3'].is-current")
    shot(tab, "first-start-step3")
    with tab.expect_response(lambda r: r.url.endswith("/api/settings") and r.request.method == "PUT"):
        tab.click("[data-testid=save-settings]")  # saving the profile is step 1: the guide stays until a run starts
    tab.reload()  # only once it is stored: the reloaded page reads it
    tab.wait_for_selector("body[data-ready=true]")
    tab.wait_for_selector("[data-step='3'].is-current")  # the run form's draft came back with the page
    assert guide.is_visible() and tab.locator("#api-panel").get_attribute("open") is None
    tab.context.close()
    assert tab.console_errors == []


def test_guide_can_be_dismissed_for_good(page):
    page.click("[data-testid=guide-close]")
    assert not page.is_visible("[data-testid=guided-start]")
    page.reload()
    page.wait_for_selector("body[data-ready=true]")
    assert not page.is_visible("[data-testid=guided-start]")


def fully_visible_cards(page) -> int:
    return page.evaluate("""() => {
        const frame = document.getElementById('grid').getBoundingClientRect();
        return [...document.querySelectorAll('[data-testid=task-card]')].filter((card) => {
            const box = card.getBoundingClientRect();
            return box.top >= frame.top && box.bottom <= frame.bottom && box.left >= frame.left && box.right <= frame.right;
        }).length;
    }""")


def visible_names(page) -> list[str]:
    """Return the file names of the cards fully inside the grid's visible rect, top to bottom."""
    return page.evaluate("""() => {
        const frame = document.getElementById('grid').getBoundingClientRect();
        return [...document.querySelectorAll('[data-testid=task-card]')].map((card) => [card, card.getBoundingClientRect()])
            .filter(([, box]) => box.top >= frame.top && box.bottom <= frame.bottom)
            .sort(([, a], [, b]) => a.top - b.top || a.left - b.left).map(([card]) => card.querySelector('.name').textContent);
    }""")


def clipped_actions(page) -> list[str]:
    """Return the card buttons that do not fit inside their card (a clipped Delete is a lost action)."""
    return page.evaluate("""() => [...document.querySelectorAll('.task-actions button')].filter((button) => {
        const box = button.getBoundingClientRect();
        const card = button.closest('.task-card').getBoundingClientRect();
        return box.right > card.right - 4 || box.bottom > card.bottom - 2;
    }).map((button) => button.textContent)""")


def test_wide_screen_shows_a_dozen_tasks_and_card_size_is_remembered(browser, server, fake, tmp_path):
    tab = open_tab(browser, server.url, viewport={"width": 1920, "height": 1080})
    start_run(tab, fake, make_sources(tmp_path / "src", 40))
    wait_count(tab, "done", 40)
    tab.wait_for_function("document.querySelectorAll('[data-testid=result-image]').length > 0")
    assert tab.input_value("[data-testid=card-size]") == "medium"
    medium = fully_visible_cards(tab)
    assert medium >= 12, medium
    assert clipped_actions(tab) == []
    assert tab.locator("[data-testid=task-card]").count() < 40  # still only the rows near the screen
    assert tab.locator("#run-concurrency").bounding_box()["width"] < 100
    for name in ("concurrency", "max_retries", "timeout_s"):
        assert tab.locator(f"#api-form [name={name}]").bounding_box()["width"] < 120, name
    shot(tab, "grid-1920-medium")
    tab.select_option("[data-testid=card-size]", "small")
    small = fully_visible_cards(tab)
    assert small > medium, (small, medium)
    assert clipped_actions(tab) == []
    tab.reload()
    tab.wait_for_selector("body[data-ready=true]")
    tab.wait_for_selector("[data-testid=task-card]")
    assert tab.input_value("[data-testid=card-size]") == "small"
    assert tab.evaluate("document.getElementById('grid').dataset.size") == "small"
    assert fully_visible_cards(tab) == small
    shot(tab, "grid-1920-small")
    tab.select_option("[data-testid=card-size]", "large")
    assert 0 < fully_visible_cards(tab) < medium
    assert clipped_actions(tab) == []
    tab.evaluate("document.getElementById('grid').scrollTop = 1000")
    tab.wait_for_timeout(100)
    top = visible_names(tab)[0]
    tab.select_option("[data-testid=card-size]", "medium")  # the task at the top stays in view
    tab.wait_for_timeout(100)
    assert top in visible_names(tab) and top != "img1.png"
    tab.click("[data-testid=lang-switch]")
    assert clipped_actions(tab) == []
    shot(tab, "grid-1920-medium-zh")
    tab.context.close()
    assert tab.console_errors == []


def make_image(path: Path, size: tuple[int, int], color=(20, 120, 200)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(make("PNG", size, color))
    return path


def test_save_report_leads_with_counts_and_groups_refusals(page, fake, server, tmp_path):
    folder = make_sources(tmp_path / "src", 2)
    make_image(folder / "square.png", (32, 32))  # the results are 64x48: another aspect ratio
    start_run(page, fake, folder)
    wait_count(page, "done", 3)
    page.click("#open-save")
    page.fill("#save-form [name=output_dir]", str(tmp_path / "out"))
    page.select_option("#save-form [name=layout]", "aitoolkit_edit")
    page.select_option("#save-form [name=conform]", "refuse")  # asked for: by default the control is resized
    page.uncheck("#save-form [name=only_selected]")
    page.click("#save-preview")
    report = page.locator("[data-testid=save-report]")
    report.locator(".report-counts").wait_for()
    assert report.locator(".report-counts").inner_text() == "4 to save · 0 skipped · 2 refused"
    aspect = report.locator("[data-reason=aspect]")
    assert "Refused · Aspect ratio differs" in aspect.locator("h4").inner_text()
    assert "Conform control" in aspect.inner_text() and "aspect tolerance" in aspect.inner_text()
    assert aspect.locator("li b").all_inner_texts() == ["square.png · 1/2", "square.png · 2/2"]
    assert "32×32 → 64×48" in aspect.inner_text()
    folders = report.locator(".report-folder")
    assert [f.get_attribute("data-folder") for f in folders.all()] == ["dataset_control/", "dataset_target/"]
    assert "from img1.png · 1/2" in folders.nth(0).inner_text()
    shot(page, "save-report-preview")
    page.check("#save-form [name=only_selected]")
    page.locator("[data-testid=result-select]").first.check()  # img1's first result
    page.wait_for_selector(".result.is-selected")
    page.click("#save-form [type=submit]")
    page.wait_for_function("document.querySelector('[data-testid=save-report] .report-counts')"
                           ".textContent.startsWith('1 saved')")
    assert report.locator(".report-counts").inner_text() == "1 saved · 2 skipped · 0 refused"
    report.locator("[data-testid=report-skips] summary").click()  # the expected skips come folded
    skipped = report.locator("[data-reason=unselected]")
    assert "Untick" in skipped.inner_text() or "untick" in skipped.inner_text()
    assert sorted(skipped.locator("li b").all_inner_texts()) == ["img2.png", "square.png"]
    page.click("#save-form [type=submit]")  # again: saved here before, so nothing is written twice
    page.wait_for_function("document.querySelector('[data-testid=save-report] [data-reason=saved_before]')")
    assert "img1.png" in report.locator("[data-reason=saved_before] li b").first.inner_text()
    assert "img1.png" in report.locator("[data-reason=saved_before] li .muted").first.inner_text()  # its files
    shot(page, "save-report-saved")


def test_viewer_slider_aligns_images_of_different_shapes(page, fake, tmp_path):
    folder = tmp_path / "src"
    make_image(folder / "wide.png", (48, 16))  # 3:1, the results are 4:3
    start_run(page, fake, folder)
    wait_count(page, "done", 1)
    page.locator("[data-testid=result-image]").first.click()
    page.locator("[data-testid=viewer]").wait_for(state="visible")
    page.click("[data-viewer=mode]")
    assert page.inner_text("[data-viewer=mode]") == "Side by side"
    page.wait_for_function("[...document.querySelectorAll('.viewer img')].every((img) => img.complete && img.naturalWidth)")
    source = page.locator("[data-testid=viewer-source]").bounding_box()
    result = page.locator("[data-testid=viewer-result]").bounding_box()
    assert source == result, (source, result)
    captions = [page.locator(f"[data-testid=caption-{name}]").bounding_box() for name in ("source", "result")]
    slider = page.locator("[data-testid=viewer-slider]").bounding_box()
    assert not overlap(*captions) and not any(overlap(c, slider) for c in captions)
    page.fill("[data-testid=viewer-slider]", "20")
    split = page.locator(".viewer-split").bounding_box()
    assert abs(split["x"] + split["width"] / 2 - (source["x"] + 0.2 * source["width"])) < 2
    shot(page, "viewer-slider-aspect")
    page.click("[data-viewer=mode]")  # side by side: each caption over its own image
    captions = [page.locator(f"[data-testid=caption-{name}]").bounding_box() for name in ("source", "result")]
    assert not overlap(*captions)


def test_words_and_numbers(page, fake, tmp_path):
    checks = page.evaluate("""async () => {
        const f = await import('/static/js/format.js');
        const i = await import('/static/js/i18n.js');
        const zhUnits = { h: '小时', min: '分', s: '秒' };
        const out = [f.duration(45), f.duration(200), f.duration(3900), f.duration(60), f.duration(3600),
                     f.duration(3599.6), f.duration(null), f.duration(200, zhUnits),
                     f.oneDecimal(12.345), f.oneDecimal(12), f.oneDecimal(0.04),
                     i.t('attempts', { count: 1 }), i.t('attempts', { count: 2 }), i.t('rate', { rate: f.oneDecimal(12.345) })];
        i.setLanguage('zh');
        out.push(i.t('attempts', { count: 1 }), i.t('attempts', { count: 2 }));
        i.setLanguage('en');
        return out;
    }""")
    assert checks == ["45 s", "3 min 20 s", "1 h 5 min", "1 min", "1 h", "1 h", "–", "3 分 20 秒",
                      "12.3", "12", "0", "1 attempt", "2 attempts", "12.3/min", "1 次尝试", "2 次尝试"]
    start_run(page, fake, make_sources(tmp_path / "src", 2))
    wait_count(page, "done", 2)
    # the cards are drawn after the counts change
    page.wait_for_function("document.querySelectorAll('[data-testid=task-card][data-status=done]').length === 2")
    assert page.locator("[data-testid=task-card] .attempts").first.inner_text() == "1 attempt"
    page.wait_for_function("/^100% · \\d+(\\.\\d)?\\/min$/.test(document.querySelector('#rate').textContent)")


def first_attempts(page) -> int:
    return int(page.inner_text("[data-testid=task-card] .attempts").split()[0])


def wait_attempts(page, count: int) -> None:
    page.wait_for_function("(n) => document.querySelector('[data-testid=task-card] .attempts').textContent"
                           ".startsWith(n + ' ')", arg=count)


def test_retry_and_resume_use_the_profile_on_the_page(page, fake, server, tmp_path):
    start_run(page, fake, make_sources(tmp_path / "src", 2), scenario="err_401_g16")
    wait_count(page, "failed", 2)
    sent = {"retry-failed": api_bodies(page, "/retry-failed"), "task": api_bodies(page, "/retry"),
            "resume": api_bodies(page, "/resume")}
    page.fill("[data-testid=api-url]", fake.url("g3_stream_dataurl", CHAT))  # the fix, not saved
    page.click("[data-testid=retry-failed]")
    wait_count(page, "done", 2)
    assert sent["retry-failed"][-1]["api"]["api_url"] == fake.url("g3_stream_dataurl", CHAT)
    assert "api_key" not in sent["retry-failed"][-1]["api"]
    # the cards are drawn after the counts change: the retried attempt must be on the first card
    page.wait_for_function("document.querySelectorAll('[data-testid=task-card][data-status=done]').length === 2")
    before = first_attempts(page)
    cards(page).first.locator("[data-action=retry-keep]").click()
    wait_attempts(page, before + 1)
    assert sent["task"][-1]["keep_results"] is True and sent["task"][-1]["api"]["model"] == "grok-imagine-1.0-edit"
    page.locator("[data-testid=result-image]").first.click()
    page.keyboard.press("r")  # the viewer's retry sends the profile too
    wait_attempts(page, before + 2)
    assert sent["task"][-1]["api"]["api_url"] == fake.url("g3_stream_dataurl", CHAT)
    page.keyboard.press("Escape")
    page.click("[data-testid=resume]")
    page.wait_for_selector(".toast-ok >> text=Queued 0 tasks")
    assert sent["resume"][-1]["api"]["api_url"] == fake.url("g3_stream_dataurl", CHAT)
    assert page.get_attribute("[data-testid=resume]", "title") == page.inner_text("#profile-hint")


def test_offline_banner_comes_and_goes_by_itself(page, server, fake, tmp_path):
    start_run(page, fake, make_sources(tmp_path / "src", 1))
    wait_count(page, "done", 1)
    banner = page.locator("[data-testid=offline-banner]")
    assert not banner.is_visible()
    port, data_dir = server.port, server.data_dir
    server.stop()
    banner.wait_for(state="visible", timeout=5000)
    assert banner.inner_text() == "The console is not answering — retrying…"
    page.fill("#filter-q", "nothing matches this")  # cards built while offline get broken images…
    page.fill("#filter-q", "")
    page.wait_for_function("[...document.querySelectorAll('.task-card img')].every((img) => img.complete)")
    shot(page, "offline")
    again = ServerProcess(data_dir, port=port)
    try:
        banner.wait_for(state="hidden", timeout=5000)
        page.wait_for_function(  # …and load once the server is back
            "[...document.querySelectorAll('.task-card img')].every((img) => img.complete && img.naturalWidth > 0)")
        again.post(f"/api/tasks/{cards(page).first.get_attribute('data-task-id')}/retry", {"keep_results": True})
        page.wait_for_function("document.querySelector('[data-testid=task-card] .attempts').textContent.startsWith('2')")
    finally:
        page.goto("about:blank")  # stop polling before this server stops too
        again.stop()
    page.console_errors[:] = [e for e in page.console_errors if "Failed to load resource" not in e]


def test_a_refused_field_under_advanced_unfolds(page):
    open_profile(page)
    page.click("[data-testid=advanced] > summary")
    page.fill("#api-form [name=temperature]", "7")  # max is 2
    page.click("[data-testid=advanced] > summary")  # folded again
    page.click("[data-testid=save-settings]")
    page.wait_for_function("document.activeElement && document.activeElement.name === 'temperature'")
    assert page.locator("[data-testid=advanced]").get_attribute("open") is not None
    assert page.locator("#api-form [name=temperature]").is_visible()


def test_the_guide_follows_the_run_forms_mode(browser, server, fake, tmp_path):
    """Step 2 asks for what the mode needs (a folder, a prompt, a table) and step 3 follows that field."""
    tab = open_tab(browser, server.url)
    fill_profile(tab, fake, "g3_stream_dataurl")
    tab.click("[data-testid=test-connection]")
    step2, step3 = tab.locator("[data-step='2']"), tab.locator("[data-step='3']")
    tab.wait_for_selector("[data-step='2'].is-current")
    assert "Pick a folder" in step2.inner_text()
    tab.click("[data-testid=mode-switch] label:has([value=generate])")
    tab.wait_for_function("document.querySelector(\"[data-step='2']\").innerText.includes('Describe the pictures')")
    assert "is-current" in step2.get_attribute("class")
    tab.click("[data-guide='2']")
    assert tab.evaluate("document.activeElement.name") == "prompt"
    tab.keyboard.type("a {animal} in the snow")
    tab.wait_for_selector("[data-step='3'].is-current")
    assert "Check the task count" in step3.inner_text()
    tab.click("[data-guide='3']")
    assert tab.evaluate("document.activeElement.dataset.testid") == "start-run"
    tab.click("[data-testid=mode-switch] label:has([value=table])")
    tab.wait_for_selector("[data-step='2'].is-current")
    assert "Pick a table" in step2.inner_text()
    tab.click("[data-guide='2']")
    assert tab.evaluate("document.activeElement.name") == "table_path"
    tab.keyboard.type(str(tmp_path / "tasks.csv"))
    tab.wait_for_selector("[data-step='3'].is-current")
    tab.click("[data-testid=lang-switch]")
    assert "选择表格" in step2.inner_text() and "检查表格" in step3.inner_text()
    assert tab.locator("#connection-output").inner_text().startswith("连接成功：HTTP 200")  # said again in Chinese
    shot(tab, "guide-table-mode-zh")
    tab.context.close()
    assert tab.console_errors == []


def test_the_page_works_under_its_content_security_policy(browser, server, fake, tmp_path):
    # No bypass_csp here: the page runs under the policy it is served with, and every use of the
    # page below must pass it (Playwright's eval-based waits are avoided for that reason).
    context = browser.new_context(viewport={"width": 1400, "height": 900}, locale="en-US")
    context.add_init_script("window.cspViolations = []; document.addEventListener('securitypolicyviolation', "
                            "(e) => window.cspViolations.push(`${e.violatedDirective} ${e.blockedURI}`));")
    tab = context.new_page()
    errors: list[str] = []
    tab.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    tab.on("pageerror", lambda error: errors.append(str(error)))
    try:
        answer = tab.goto(server.url)
        assert "frame-ancestors 'none'" in answer.headers["content-security-policy"]
        tab.wait_for_selector("body[data-ready=true]", timeout=10_000)
        tab.click("[data-testid=lang-switch]")  # the whole page redrawn in Chinese, and back
        tab.click("[data-testid=lang-switch]")
        start_run(tab, fake, make_sources(tmp_path / "src", 2))
        tab.locator("[data-testid=task-card][data-status=done]").nth(1).wait_for(timeout=30_000)
        tab.locator("[data-testid=result-image]").first.click()  # the viewer: images, slider, zoom
        tab.locator("[data-testid=viewer]").wait_for(state="visible")
        tab.click("[data-viewer=mode]")
        tab.keyboard.press("Escape")
        tab.click("#open-save")
        tab.locator("#save-drawer").wait_for(state="visible")
        shot(tab, "page-under-csp")
        assert tab.evaluate("window.cspViolations") == []
    finally:
        context.close()
    assert errors == []


def test_a_caption_changed_in_another_tab_reaches_the_open_viewer_and_is_not_put_back(page, fake, server, tmp_path):
    start_run(page, fake, make_sources(tmp_path / "src", 1))
    wait_count(page, "done", 1)
    page.locator("[data-testid=result-image]").first.click()
    page.locator("[data-testid=viewer]").wait_for(state="visible")
    page.keyboard.press("Tab")  # in the caption box, nothing typed
    editor = page.locator("[data-testid=caption-editor]")
    assert page.evaluate("document.activeElement?.dataset.testid") == "caption-editor"
    result_id = page.locator("[data-testid=result-image]").first.get_attribute("data-result-id")
    answer = server.http.patch(f"/api/results/{result_id}", json={"caption": "typed in another tab"})
    assert answer.status_code == 200, answer.text
    page.wait_for_function("document.querySelector('[data-testid=caption-editor]').value === 'typed in another tab'")
    patches: list[str] = []
    page.on("request", lambda r: patches.append(r.post_data or "") if r.method == "PATCH" else None)
    page.keyboard.press("Escape")  # leaves the box: nothing to save, the other tab's caption stays
    page.wait_for_timeout(300)
    assert patches == []
    assert editor.input_value() == "typed in another tab"
    task = server.get(f"/api/runs/{run_id(server)}/tasks").json()["tasks"][0]
    assert task["results"][0]["caption"] == "typed in another tab"
    page.wait_for_selector("[data-testid=card-caption]:text-is('1. typed in another tab')")  # the first of two results


def test_inputs_take_their_bounds_from_the_server(browser, server):
    """The page's inputs (static ones and those it builds) take their bounds from GET /api/rules, not from literals."""
    context = browser.new_context(viewport={"width": 1400, "height": 900}, bypass_csp=True)
    tab = context.new_page()

    def other_rules(route):  # the server's rules, with bounds the page's own attributes do not hold
        answer = route.fetch()
        rules = answer.json()
        rules["profile"]["concurrency"]["max"] = 48
        rules["profile"]["timeout_s"] = {"min": 5, "max": 1800, "whole": False}
        rules["run"]["count"]["max"] = 30
        rules["captions"]["find_max_chars"] = 500
        route.fulfill(response=answer, json=rules)

    tab.route("**/api/rules", other_rules)
    tab.goto(server.url)
    tab.wait_for_selector("body[data-ready=true]", timeout=10_000)
    bounds = "(e) => [e.min, e.max]"
    assert tab.eval_on_selector("#api-form [name=concurrency]", bounds) == ["1", "48"]
    assert tab.eval_on_selector("[data-testid=run-concurrency]", bounds) == ["1", "48"]
    assert tab.eval_on_selector("#api-form [name=timeout_s]", bounds) == ["5", "1800"]
    assert tab.eval_on_selector("#run-form [name=count]", bounds) == ["1", "30"]
    assert tab.eval_on_selector("[data-testid=replace-find]", "(e) => e.maxLength") == 500
    tab.evaluate("document.getElementById('key-pool-add').click()")  # a row the page builds itself
    assert tab.eval_on_selector("[data-testid=pool-row] [data-field=concurrency]", bounds) == ["1", "48"]
    context.close()


def test_the_text_the_model_sent_shows_in_the_viewer_and_becomes_the_caption(page, fake, server, tmp_path):
    start_run(page, fake, make_sources(tmp_path / "src", 1), scenario="g1_nonstream")  # text, then the image
    wait_count(page, "done", 1)
    page.locator("[data-testid=result-image]").first.click()
    page.locator("[data-testid=viewer]").wait_for(state="visible")
    answer_text = page.locator("[data-testid=answer-text]")
    answer_text.wait_for(state="visible")
    assert answer_text.inner_text() == "Here is your image."
    assert page.input_value("[data-testid=caption-editor]") == ""
    with page.expect_response(lambda r: "/api/results/" in r.url and r.request.method == "PATCH") as answer:
        page.click("[data-testid=use-answer-text]")
    assert json.loads(answer.value.request.post_data) == {"caption": "Here is your image."}
    assert page.input_value("[data-testid=caption-editor]") == "Here is your image."
    page.wait_for_selector("[data-testid=caption-state][data-state=saved]")
    page.keyboard.press("Escape")
    page.wait_for_selector("[data-testid=card-caption]:text-is('Here is your image.')")


# --------------------------------------------------------------------------- batch delivery

IMAGES = "/v1/images/edits"


def test_batch_delivery_in_the_profile_form_is_stored_and_a_refusal_points_at_it(page, fake, server):
    """Delivery shows its batch settings only when batch is chosen, with the server's bounds; they are stored
    and shown again; a profile with no batch route is refused by name and the page points at Delivery."""
    open_profile(page)
    page.click("[data-testid=advanced] > summary")
    assert not page.locator("[data-testid=batch-poll]").is_visible()  # live: nothing about batches
    assert not page.locator("[data-testid=price-batch-discount]").is_visible()
    page.select_option("[data-testid=delivery]", "batch")
    bounds = "(e) => [e.min, e.max]"
    rules = server.get("/api/rules").json()
    poll, most = rules["profile"]["batch_poll_s"], rules["profile"]["batch_max_requests"]
    assert page.eval_on_selector("[data-testid=batch-poll]", bounds) == [str(poll["min"]), str(poll["max"])]
    assert page.eval_on_selector("[data-testid=batch-max]", bounds) == [str(most["min"]), str(most["max"])]
    assert page.eval_on_selector("[data-testid=price-batch-discount]", bounds) == ["0", "1"]
    page.fill("#api-form [name=api_url]", fake.url("ok", IMAGES))
    page.fill("#api-form [name=model]", "gpt-image-1")
    page.check("#api-form [name=allow_private_api]")
    page.fill("[data-testid=batch-poll]", "5")
    page.fill("[data-testid=batch-max]", "200")
    page.fill("[data-testid=price-batch-discount]", "0.4")
    page.click("[data-testid=save-settings]")
    page.wait_for_selector(".toast-ok")
    api = server.get("/api/settings").json()["api"]
    assert (api["delivery"], api["batch_poll_s"], api["batch_max_requests"]) == ("batch", 5, 200)
    assert api["prices"]["batch_discount"] == 0.4
    page.reload()
    page.wait_for_selector("body[data-ready=true]")
    open_profile(page)
    page.click("[data-testid=advanced] > summary")
    assert page.input_value("[data-testid=delivery]") == "batch"
    assert page.input_value("[data-testid=batch-poll]") == "5"
    assert page.input_value("[data-testid=price-batch-discount]") == "0.4"

    page.select_option("#api-form [name=edit_format]", "json_image")  # Seedream: no batch route
    page.click("[data-testid=advanced] > summary")  # folded: the refusal unfolds it
    page.click("[data-testid=save-settings]")
    toast = page.wait_for_selector(".toast-error")
    assert "delivery" in toast.inner_text() and "json_image" in toast.inner_text()
    page.wait_for_function("document.activeElement && document.activeElement.name === 'delivery'")
    assert page.get_attribute("[data-testid=delivery]", "aria-invalid") is not None
    assert server.get("/api/settings").json()["api"]["edit_format"] != "json_image"  # nothing stored
    page.console_errors.clear()  # the 400 is expected
    page.select_option("[data-testid=delivery]", "live")
    assert page.get_attribute("[data-testid=delivery]", "aria-invalid") is None
    assert not page.locator("[data-testid=batch-poll]").is_visible()
    shot(page, "profile-batch-refused")


def test_batch_chips_words_in_both_languages(page):
    """The run bar's chips: number, status in the page's language, lines answered, older batches summed up."""
    texts = page.evaluate("""async () => {
        const b = await import('/static/js/batches.js');
        const i = await import('/static/js/i18n.js');
        const batch = (n, status, completed, failed) => ({ id: 'b' + n, provider_id: 'batch_' + n, service: 'openai',
          status, done: status === 'completed', total: 1000, completed, failed, error: null, created_at: 0, finished_at: null });
        const six = [6, 5, 4, 3, 2, 1].map((n) => batch(n, n === 6 ? 'in_progress' : 'completed', n === 6 ? 340 : 1000, 0));
        const out = [b.batchChipText(batch(1, 'in_progress', 340, 0), 1), b.batchChipText(batch(2, 'completed', 998, 2), 2),
                     b.batchStatus('weird_state'), JSON.stringify(b.chipsToShow(six).older),
                     b.chipsToShow(six).shown.map((item) => item.number).join(',')];
        i.setLanguage('zh');
        out.push(b.batchChipText(batch(1, 'in_progress', 340, 0), 1), b.batchStatus('succeeded'));
        i.setLanguage('en');
        return out;
    }""")
    assert texts == ["batch 1 · in progress · 340/1000", "batch 2 · completed · 998/1000 · 2 failed", "weird state",
                     '{"count":2,"completed":2000,"total":2000,"failed":0}', "3,4,5,6",
                     "批量作业 1 · 处理中 · 340/1000", "已完成"]


def test_an_expired_batch_shows_red_and_its_reason_on_the_cards_it_left(page, fake, server, tmp_path):
    """A batch that expires half done: its chip says expired in red, the unanswered tasks fail with the reason."""
    fill_profile(page, fake, "batch.batch_s=2.batch_expire=1")
    page.click("[data-testid=advanced] > summary")
    page.select_option("[data-testid=delivery]", "batch")
    page.fill("[data-testid=batch-poll]", "1")
    start_run(page, fake, make_sources(tmp_path / "src", 4), scenario="batch.batch_s=2.batch_expire=1")
    chip = page.locator("[data-testid=run-batches] [data-testid=batch-chip]")
    page.wait_for_function("() => /^batch 1 · expired · 2\\/4/.test(document.querySelector("
                           "'[data-testid=run-batches] [data-testid=batch-chip]')?.textContent)", timeout=30_000)
    assert "is-bad" in chip.get_attribute("class")
    wait_count(page, "failed", 2)
    wait_count(page, "done", 2)
    page.wait_for_function("document.querySelectorAll('[data-testid=task-card][data-status=failed] .error').length === 2")
    errors = cards(page, "failed").locator(".error").all_inner_texts()
    assert len(errors) == 2 and all("expired" in error for error in errors), errors
    shot(page, "batch-expired")
