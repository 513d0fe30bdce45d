"""The review page in headless Chromium (Debian's) against the real server and the fake gateway."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.server_process import ServerProcess
from tests.test_runs_api import make_sources

playwright_api = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
CHAT = "/v1/chat/completions"


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: ./test.sh installs Debian's chromium")
    with playwright_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run"])
        yield chromium
        chromium.close()


@pytest.fixture
def server(tmp_path):
    process = ServerProcess(tmp_path / "data")
    yield process
    process.stop()


@pytest.fixture
def page(browser, server):
    context = browser.new_context(viewport={"width": 1400, "height": 900}, locale="en-US")
    tab = context.new_page()
    errors: list[str] = []
    tab.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    tab.on("pageerror", lambda error: errors.append(str(error)))
    tab.accept_dialog = lambda dialog: dialog.accept()
    tab.on("dialog", tab.accept_dialog)
    tab.goto(server.url)
    tab.wait_for_selector("body[data-ready=true]", timeout=10_000)  # a broken page fails fast
    tab.console_errors = errors  # a test that provokes an error answer removes what it expects
    yield tab
    context.close()
    assert errors == [], errors


def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"))


def fill_profile(page, fake, scenario: str) -> None:
    if not page.locator("#api-form").is_visible():
        page.click("#api-panel > summary")
    page.fill("#api-form [name=api_url]", fake.url(scenario, CHAT))
    page.fill("#api-form [name=model]", "grok-imagine-1.0-edit")
    page.fill("#api-form [name=max_retries]", "0")
    page.check("#api-form [name=allow_private_api]")


def start_run(page, fake, folder: Path, scenario: str = "g3_stream_dataurl") -> None:
    fill_profile(page, fake, scenario)
    page.fill("[data-testid=path-input]", str(folder))
    page.fill("[data-testid=prompt-input]", "make it blue")
    page.click("[data-testid=start-run]")


def cards(page, status: str | None = None):
    selector = "[data-testid=task-card]" + (f"[data-status={status}]" if status else "")
    return page.locator(selector)


def wait_count(page, status: str, count: int, timeout: float = 30_000) -> None:
    """Wait until the progress chip of `status` shows `count` (the grid only renders rows on screen)."""
    page.wait_for_function(
        "([status, count]) => document.querySelector(`#counts [data-status=\"${status}\"]`)?.textContent.endsWith(` ${count}`)",
        arg=[status, count], timeout=timeout)


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
    page.keyboard.press(" ")
    page.wait_for_function("document.querySelector('.viewer-result-info').textContent.includes('✓')")
    task = next(t for t in server.get(f"/api/runs/{run_id(server)}/tasks").json()["tasks"] if t["source_name"] == "img2.png")
    assert [r["selected"] for r in task["results"]] == [False, True]
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


def test_api_settings_saved_and_key_masked(page, server):
    if not page.locator("#api-form").is_visible():
        page.click("#api-panel > summary")
    page.fill("#api-form [name=api_url]", "http://127.0.0.1:8000/v1")
    page.fill("#api-form [name=api_key]", "sk-page-secret")
    page.click("#api-form [type=submit]")
    page.wait_for_selector(".toast-ok")
    page.reload()
    page.wait_for_selector("body[data-ready=true]")
    value = page.input_value("#api-form [name=api_key]")
    assert value and value != "sk-page-secret" and "sk-page-secret" not in page.content()
    assert server.get("/api/settings").json()["api"]["api_url"] == "http://127.0.0.1:8000/v1"


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
    assert page.input_value("#api-form [name=model]") == "grok-imagine-1.0-edit"
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
    page.wait_for_function("document.querySelector('#save-output').textContent.startsWith('Saved 1')")
    assert sorted(p.name for p in (out / "blue_target").iterdir()) == ["img1.png", "img1.txt"]
    assert sorted(p.name for p in (out / "blue_control").iterdir()) == ["img1.png"]
    assert (out / "blue_target" / "img1.txt").read_text(encoding="utf-8").strip() == "make it blue"
    shot(page, "save-panel")


def test_chinese_browser_gets_chinese(browser, server):
    context = browser.new_context(locale="zh-CN")
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
