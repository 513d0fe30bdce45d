"""User journeys, the product's acceptance tests: a person in the page, the real server, the fake gateway.

Each journey does what a user does in Debian's Chromium (types the key, picks a folder, reviews with
the keyboard, saves) against the console as a real process (fresh data dir) and the fake gateway,
which checks the `Authorization` it receives (`key=…` scenario option). The HTTP API is used only
to read state for assertions. An older page sent the masked key back as a per-run override and
every task of a new user's first run failed; these journeys check where the key lands: the gateway.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Callable

import pytest
from PIL import Image, ImageDraw

from tests.disks import small_disk  # noqa: F401  (fixture)
from testkit.fake_upstream import FakeUpstream
from testkit.server_process import ServerProcess

playwright_api = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.browser

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
CHAT = "/v1/chat/completions"
MODEL = "grok-imagine-1.0-edit"
MASK = "••••••••"
WAIT_MS = 30_000
# Words that must never reach a user: a crash leaking through instead of a readable message.
CRASH_WORDS = re.compile(r"internal (server )?error|traceback", re.IGNORECASE)


# --------------------------------------------------------------------------- fixtures


class Watch:
    """What the page did that a user would notice: 5xx answers, script errors, every toast."""

    def __init__(self) -> None:
        self.server_errors: list[str] = []
        self.console_errors: list[str] = []
        self.prompt_answer = ""
        self.confirm_answer = True  # what the person answers a confirm dialog
        self.dialogs: list[str] = []  # the confirm dialogs' messages


@pytest.fixture
def page(browser, server, request):
    # bypass_csp: Playwright's string predicates run through eval, which the page's policy forbids
    context = browser.new_context(viewport={"width": 1400, "height": 900}, locale="en-US", bypass_csp=True)
    tab = context.new_page()
    watch = Watch()

    def on_response(response) -> None:
        if response.status >= 500:
            watch.server_errors.append(f"{response.status} {response.request.method} {response.url}")

    def on_console(message) -> None:
        # Chromium logs every 4xx answer; a refused input is a 400 on purpose (the toast is checked).
        if message.type == "error" and not re.search(r"status of 4\d\d", message.text):
            watch.console_errors.append(message.text)

    def on_dialog(dialog) -> None:
        if dialog.type == "prompt":
            dialog.accept(watch.prompt_answer)
        elif dialog.type == "confirm":
            watch.dialogs.append(dialog.message)
            dialog.accept() if watch.confirm_answer else dialog.dismiss()
        else:
            dialog.accept()

    tab.on("response", on_response)
    tab.on("console", on_console)
    tab.on("pageerror", lambda error: watch.console_errors.append(str(error)))
    tab.on("dialog", on_dialog)
    tab.watch = watch
    tab.goto(server.url)
    tab.wait_for_selector("body[data-ready=true]", timeout=10_000)
    yield tab
    name = request.node.name.removeprefix("test_")
    ARTIFACTS.mkdir(exist_ok=True)
    try:  # the last screen, also when the journey failed: it shows where the user got stuck
        tab.screenshot(path=str(ARTIFACTS / f"journey_{name}.png"), full_page=False)
    finally:
        context.close()
    assert watch.server_errors == [], watch.server_errors
    assert watch.console_errors == [], watch.console_errors


# --------------------------------------------------------------------------- sources


def make_photos(folder: Path, sizes: list[tuple[int, int]], prefix: str = "photo") -> Path:
    """Write real, distinct PNG and JPEG files of the given sizes (names sort in this order)."""
    folder.mkdir(parents=True, exist_ok=True)
    for index, (width, height) in enumerate(sizes, start=1):
        image = Image.new("RGB", (width, height), (30 + index * 17 % 200, 90, 160 - index * 9 % 120))
        draw = ImageDraw.Draw(image)
        draw.ellipse((width // 5, height // 5, width * 4 // 5, height * 4 // 5), fill=(240, 200 - index * 13 % 150, 40))
        draw.rectangle((index * 3 % width, 2, index * 3 % width + 6, 8), fill=(255, 255, 255))
        if index % 3 == 2:
            image.save(folder / f"{prefix}{index:02d}.jpg", "JPEG", quality=90)
        else:
            image.save(folder / f"{prefix}{index:02d}.png", "PNG")
    return folder


MIXED = [(96, 72), (64, 64), (120, 90), (48, 64), (160, 90), (80, 60), (64, 64), (90, 120), (72, 54), (100, 100)]


# --------------------------------------------------------------------------- the user's steps


def open_profile(page) -> None:
    """Unfold the API profile panel if it is folded."""
    if not page.locator("[data-testid=api-url]").is_visible():
        page.click("#api-panel > summary")
    page.locator("[data-testid=api-url]").wait_for(state="visible")


def open_advanced(page) -> None:
    open_profile(page)
    advanced = page.locator("[data-testid=advanced]")
    if advanced.get_attribute("open") is None:
        advanced.locator("summary").click()


def fill_profile(page, url: str, key: str | None, *, concurrency: int | None = None, model: str = MODEL) -> None:
    """Type URL, key and model, allow the loopback gateway, as a user does (no saving)."""
    open_profile(page)
    page.fill("[data-testid=api-url]", url)
    if key is not None:
        page.fill("[data-testid=api-key]", key)
    page.fill("[data-testid=api-model]", model)
    page.fill("#api-form [name=max_retries]", "0")
    if concurrency is not None:
        page.fill("#api-form [name=concurrency]", str(concurrency))
    page.check("[data-testid=allow-private-api]")


def save_settings(page) -> dict:
    """Click Save settings; return the server's answer (which must be a success) once the page has shown it."""
    with page.expect_response(lambda r: r.url.endswith("/api/settings") and r.request.method == "PUT") as answer:
        page.click("[data-testid=save-settings]")
    assert answer.value.status == 200, answer.value.text()
    # The page refills the form (key field emptied) and says Saved after Playwright sees the answer.
    page.wait_for_function("document.querySelector('[data-testid=api-key]').value === ''", timeout=WAIT_MS)
    return answer.value.json()


def pick_folder(page, folder: Path, count: int) -> None:
    """Type the folder's path and preview what the scan finds."""
    page.fill("[data-testid=path-input]", str(folder))
    page.click("#scan")
    page.wait_for_function("(n) => document.querySelector('#scan-output')?.textContent.includes(`${n} image`)",
                           arg=count, timeout=WAIT_MS)


def start_run(page, prompt: str = "make the sky purple") -> str:
    """Type the prompt, click Start run; return the new run's id (from the page's own request)."""
    page.fill("[data-testid=prompt-input]", prompt)
    with page.expect_response(lambda r: r.url.endswith("/api/runs") and r.request.method == "POST") as answer:
        page.click("[data-testid=start-run]")
    assert answer.value.status == 201, answer.value.text()
    return answer.value.json()["run_id"]


def test_connection(page) -> str:
    """Click Test connection; return what the page shows once the answer is in."""
    with page.expect_response(lambda r: r.url.endswith("/api/test-connection")):
        page.click("[data-testid=test-connection]")
    page.wait_for_function("(() => { const o = document.querySelector('[data-testid=connection-output]');"
                           " return o && !o.hidden && o.textContent.trim().length > 1; })()", timeout=WAIT_MS)
    return page.inner_text("[data-testid=connection-output]")


test_connection.__test__ = False  # a helper, not a test


def click_run_button(page, testid: str) -> None:
    """Click a run-bar button (stop-run, resume, retry-failed) and wait for the server's answer."""
    action = {"stop-run": "/stop", "resume": "/resume", "retry-failed": "/retry-failed"}[testid]
    with page.expect_response(lambda r: r.url.endswith(action) and r.request.method == "POST") as answer:
        page.click(f"[data-testid={testid}]")
    assert answer.value.status == 200, answer.value.text()


def wait_until(predicate: Callable[[], object], timeout: float = 30.0, what: str = "condition"):
    """Poll predicate (state read from the API or the fake) until it holds; return its value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def listing(server: ServerProcess, run_id: str) -> dict:
    return server.get(f"/api/runs/{run_id}/tasks").json()


def idle(server: ServerProcess, run_id: str, timeout: float = 60.0) -> dict:
    """Wait until the run has nothing queued or in flight (server side); return its listing."""
    return wait_until(lambda: (lambda l: None if l["running"] else l)(listing(server, run_id)), timeout,
                      f"run {run_id} to go idle")


def wait_settled(page, server: ServerProcess, run_id: str, timeout: float = 60.0) -> dict:
    """Wait until the run has nothing queued or running, and the page shows the same counts."""
    final = idle(server, run_id, timeout)
    progress = final["progress"]
    wait_chip(page, "done", progress["done"])
    wait_chip(page, "failed", progress["failed"])
    return final


def check_every_result(page, count: int) -> None:
    """Tick each of the `count` results in the grid, once the grid shows them all (its counts come first)."""
    wait_shown(page, "[data-testid=result-select]", count)
    for box in page.locator("[data-testid=result-select]").all():
        box.check()
    page.wait_for_function("(n) => document.querySelectorAll('.result.is-selected').length === n", arg=count,
                           timeout=WAIT_MS)


def wait_all_done(page, server: ServerProcess, run_id: str, total: int, timeout: float = 60.0) -> dict:
    final = wait_settled(page, server, run_id, timeout)
    assert final["progress"]["done"] == total, final["progress"]
    return final


def wait_history_done(page, run_id: str, done: int, total: int) -> None:
    """Wait until the run list shows the run finished: `done/total`, no running mark (it refreshes every 5 s)."""
    page.wait_for_function(
        """([id, text]) => { const item = document.querySelector(`#history [data-run-id="${id}"]`);
                            return item && !item.classList.contains('is-running') && item.textContent.includes(text); }""",
        arg=[run_id, f"{done}/{total}"], timeout=8_000)


def wait_chip(page, status: str, count: int, timeout: float = WAIT_MS) -> None:
    """Wait until the page's count chip of a status shows `count`."""
    page.wait_for_function(
        "([status, count]) => document.querySelector(`#counts [data-status=\"${status}\"]`)"
        "?.textContent.trim().endsWith(` ${count}`)", arg=[status, count], timeout=timeout)


def wait_shown(page, selector: str, count: int, timeout: float = WAIT_MS) -> None:
    """Wait until the page shows exactly `count` elements matching `selector` (the grid draws its cards after
    the counts above it change)."""
    page.wait_for_function("([selector, n]) => document.querySelectorAll(selector).length === n",
                           arg=[selector, count], timeout=timeout)


def cards(page, status: str | None = None):
    return page.locator("[data-testid=task-card]" + (f"[data-status={status}]" if status else ""))


def image_calls(fake: FakeUpstream) -> list:
    """Every image call (POST) the gateway received, in arrival order."""
    return [r for r in fake.requests if r.scenario is not None and r.method == "POST"]


def gateway_keys(fake: FakeUpstream, *, models: bool = True) -> list[str | None]:
    """The distinct Authorization values the gateway saw, in order of first appearance."""
    seen: list[str | None] = []
    for value in fake.authorizations(models=models):
        if value not in seen:
            seen.append(value)
    return seen


def toasts(page, kind: str = "error") -> list[str]:
    return page.locator(f".toast-{kind}").all_inner_texts()


def assert_no_crash_text(page) -> None:
    text = page.inner_text("body")
    assert not CRASH_WORDS.search(text), CRASH_WORDS.search(text).group(0)


def stored_key(server: ServerProcess) -> str:
    """The key the server stored (read from its settings file: answers only ever show the mask)."""
    return json.loads((server.data_dir / "settings.json").read_text())["api"]["api_key"]


# --------------------------------------------------------------------------- journeys


def test_a_first_start(page, server, fake, tmp_path):
    key = "sk-live-A1b2C3"
    url = fake.url(f"g3_stream_dataurl.key={key}", CHAT)
    folder = make_photos(tmp_path / "photos", MIXED[:8])
    assert page.locator("[data-testid=guided-start]").is_visible()  # a first start shows the way
    fill_profile(page, url, key)
    saved = save_settings(page)
    assert saved["api"]["api_key"] == MASK and stored_key(server) == key
    assert page.input_value("[data-testid=api-key]") == ""  # never the mask in the input
    listed = test_connection(page)
    assert all(m in listed for m in (MODEL, "grok-imagine-image-edit", "gpt-image-1")), listed
    pick_folder(page, folder, 8)
    run_id = start_run(page)
    wait_all_done(page, server, run_id, 8)
    cards(page, "done").first.wait_for(timeout=WAIT_MS)  # the grid draws its cards after the counts
    assert cards(page, "failed").count() == 0
    assert len(image_calls(fake)) == 8 and any(r.method == "GET" for r in fake.requests)
    assert gateway_keys(fake) == [f"Bearer {key}"]  # models and every image call: that key, never the mask
    assert_no_crash_text(page)


def test_b_reload_keeps_the_stored_key(page, server, fake, tmp_path):
    key = "sk-live-B7c8D9"
    url = fake.url(f"g3_stream_dataurl.key={key}", CHAT)
    folder = make_photos(tmp_path / "photos", MIXED[:4])
    fill_profile(page, url, key)
    save_settings(page)
    pick_folder(page, folder, 4)
    wait_all_done(page, server, start_run(page, "first run"), 4)
    page.reload()
    page.wait_for_selector("body[data-ready=true]", timeout=10_000)
    open_profile(page)
    key_input = page.locator("[data-testid=api-key]")
    assert key_input.input_value() == ""
    assert "stored" in (key_input.get_attribute("placeholder") or "").lower()
    assert page.input_value("[data-testid=api-url]") == url
    pick_folder(page, folder, 4)
    wait_all_done(page, server, start_run(page, "second run after a reload"), 4)
    assert len(image_calls(fake)) == 8
    assert gateway_keys(fake) == [f"Bearer {key}"]


def test_c_api_preset_apply(page, server, fake, tmp_path):
    key_a, key_b = "sk-proj-Preset111", "sk-proj-Other222"
    url_a = fake.url(f"g3_stream_dataurl.key={key_a}", CHAT)
    url_b = fake.url(f"g3_stream_dataurl.key={key_b}", CHAT)
    folder = make_photos(tmp_path / "photos", MIXED[:5])
    fill_profile(page, url_a, key_a)
    save_settings(page)
    page.watch.prompt_answer = "gateway A"
    with page.expect_response(lambda r: "/api/presets/api/" in r.url and r.request.method == "PUT") as answer:
        page.click("[data-testid=api-preset-save]")
    assert answer.value.status == 200, answer.value.text()
    page.wait_for_function("[...document.querySelectorAll('[data-testid=api-preset] option')]"
                           ".some((o) => o.value === 'gateway A')", timeout=WAIT_MS)
    fill_profile(page, url_b, key_b)
    save_settings(page)
    assert stored_key(server) == key_b
    page.select_option("[data-testid=api-preset]", "gateway A")
    with page.expect_response(lambda r: r.url.endswith("/apply") and r.request.method == "POST") as answer:
        page.click("[data-testid=api-preset-apply]")
    assert answer.value.status == 200, answer.value.text()
    page.wait_for_function("(url) => document.querySelector('[data-testid=api-url]').value === url", arg=url_a,
                           timeout=WAIT_MS)  # the form is filled once the answer is read
    assert server.get("/api/settings").json()["api"]["api_url"] == url_a
    assert stored_key(server) == key_a  # the preset's key became the stored key
    pick_folder(page, folder, 5)
    wait_all_done(page, server, start_run(page), 5)
    assert {r.scenario for r in image_calls(fake)} == {f"g3_stream_dataurl.key={key_a}"}
    assert gateway_keys(fake) == [f"Bearer {key_a}"]


def test_d_key_changed_while_a_run_is_queued(page, server, fake, tmp_path):
    key_a, key_b = "sk-live-Aaaa1111", "sk-live-Bbbb2222"
    url = fake.url(f"latency.s=0.8.key={key_a}~{key_b}", CHAT)
    folder = make_photos(tmp_path / "photos", MIXED[:6])
    fill_profile(page, url, key_a, concurrency=1)
    save_settings(page)
    pick_folder(page, folder, 6)
    run_id = start_run(page)
    wait_until(lambda: len(image_calls(fake)) >= 1, what="the first call")
    page.fill("[data-testid=api-key]", key_b)
    save_settings(page)
    before_save = len(image_calls(fake))
    # The run goes on with the profile it started with: the next task's call still carries key A.
    wait_until(lambda: len(image_calls(fake)) > before_save, what="a call after the key changed")
    progress = listing(server, run_id)["progress"]
    assert progress["pending"] > 0, progress
    assert gateway_keys(fake, models=False) == [f"Bearer {key_a}"]
    click_run_button(page, "stop-run")
    stopped = idle(server, run_id)
    assert stopped["progress"]["stopped"] > 0 and stopped["progress"]["failed"] == 0, stopped["progress"]
    wait_chip(page, "stopped", stopped["progress"]["stopped"])
    calls_with_a = len(image_calls(fake))
    click_run_button(page, "resume")  # Resume sends the form's profile: the stored key is now B
    wait_all_done(page, server, run_id, 6)
    wait_history_done(page, run_id, 6, 6)
    keys = [r.headers.get("authorization") for r in image_calls(fake)]
    assert keys[:calls_with_a] == [f"Bearer {key_a}"] * calls_with_a
    assert keys[calls_with_a:] == [f"Bearer {key_b}"] * (len(keys) - calls_with_a), keys
    assert len(keys) - calls_with_a == stopped["progress"]["stopped"] + stopped["progress"]["pending"]


def test_e_mixed_outcomes_then_retry_failed(page, server, fake, tmp_path):
    key_a, key_b = "sk-trial-A1b2", "sk-paid-B3c4"
    # picky: the first call of every third source is refused with text; each key has 6 image calls.
    url = fake.url(f"picky.key={key_a}~{key_b}.key_calls=6", CHAT)
    folder = make_photos(tmp_path / "photos", MIXED[:9])
    fill_profile(page, url, key_a, concurrency=1)  # one at a time: which source meets which fault is fixed
    save_settings(page)
    pick_folder(page, folder, 9)
    run_id = start_run(page)
    final = wait_settled(page, server, run_id)
    assert final["progress"]["done"] == 4 and final["progress"]["failed"] == 5, final["progress"]
    revoked = "API key sk-******A1b2 has been revoked: its quota of 6 image calls is used up."
    by_name = {t["source_name"]: t for t in final["tasks"]}
    refused = [n for n, t in sorted(by_name.items()) if t["status"] == "failed" and t["http_status"] != 401]
    unauthorized = [n for n, t in sorted(by_name.items()) if t["http_status"] == 401]
    assert refused == ["photo03.png", "photo06.png"] and unauthorized == ["photo07.png", "photo08.jpg", "photo09.png"]
    page.click("#counts [data-status=failed]")  # the user filters the grid to what failed
    page.wait_for_function("document.querySelectorAll('[data-testid=task-card]').length === 5", timeout=WAIT_MS)
    errors = dict(zip(cards(page).locator(".name").all_inner_texts(), cards(page).locator(".error").all_inner_texts()))
    for name in unauthorized:
        assert "401" in errors[name] and revoked in errors[name], errors[name]
    for name in refused:
        assert "no image" in errors[name].lower() and "I can't help with that image." in errors[name], errors[name]
    assert_no_crash_text(page)
    page.click("#counts [data-status='']")
    open_profile(page)
    page.fill("[data-testid=api-key]", key_b)
    save_settings(page)
    click_run_button(page, "retry-failed")
    wait_all_done(page, server, run_id, 9)
    keys = fake.authorizations()
    assert gateway_keys(fake) == [f"Bearer {key_a}", f"Bearer {key_b}"]
    assert keys == [f"Bearer {key_a}"] * 9 + [f"Bearer {key_b}"] * 5, keys


def test_f_keyboard_review_and_save_pairs(page, server, fake, tmp_path):
    key = "sk-live-Review99"
    # latency.s=0 answers one 512x512 image: square sources pair fine, 4:3 ones do not.
    url = fake.url(f"latency.s=0.key={key}", CHAT)
    sizes = [(64, 64), (96, 72), (120, 90), (100, 100), (80, 60), (64, 64)]
    folder = make_photos(tmp_path / "photos", sizes)
    names = sorted(p.name for p in folder.iterdir())
    out = tmp_path / "datasets"
    fill_profile(page, url, key)
    save_settings(page)
    pick_folder(page, folder, 6)
    run_id = start_run(page, "turn it into a watercolour")
    wait_all_done(page, server, run_id, 6)
    page.locator("[data-testid=task-card]").first.locator("[data-testid=result-image]").first.click()
    viewer = page.locator("[data-testid=viewer]")
    viewer.wait_for(state="visible")
    for number in range(1, 5):  # select tasks 1-4: Space, then → to the next one
        assert f"{number}. {names[number - 1]}" in page.inner_text(".viewer-title")
        space_selects_and_moves_on(page)
    page.keyboard.press("Escape")
    viewer.wait_for(state="hidden")
    tasks = sorted(listing(server, run_id)["tasks"], key=lambda t: t["index"])
    assert [any(r["selected"] for r in t["results"]) for t in tasks] == [True] * 4 + [False] * 2
    page.click("#open-save")
    form = page.locator("#save-form")
    form.locator("[name=output_dir]").fill(str(out))
    form.locator("[name=layout]").select_option("aitoolkit_edit")
    form.locator("[name=name]").fill("watercolour")
    form.locator("[name=conform]").select_option("refuse")  # asked for: by default the control is resized
    form.locator("[type=submit]").click()
    report = page.locator("[data-testid=save-report]")
    report.wait_for(state="visible")
    page.wait_for_function("document.querySelector('[data-testid=save-report]').textContent.trim().length > 0")
    text = report.inner_text()
    report.screenshot(path=str(ARTIFACTS / "journey_f_save_report_refused.png"))
    refused = [names[1], names[2]]  # the 4:3 ones among the selected
    assert re.search(r"aspect", text, re.IGNORECASE), text
    assert re.search(r"conform", text, re.IGNORECASE), text
    for name in refused:
        assert Path(name).stem in text, f"the report does not say that {name} was refused:\n{text}"
    control, target = out / "watercolour_control", out / "watercolour_target"
    assert sorted(p.name for p in target.glob("*.png")) == sorted(Path(n).stem + ".png" for n in (names[0], names[3]))
    form.locator("[name=conform]").select_option("pad")
    form.locator("[type=submit]").click()
    wait_until(lambda: len(list(target.glob("*.png"))) == 4, what="the conformed pairs on disk")
    stems = sorted(Path(n).stem for n in names[:4])
    assert sorted(p.stem for p in target.glob("*.png")) == stems
    assert sorted(p.stem for p in target.glob("*.txt")) == stems
    assert sorted(p.stem for p in control.iterdir()) == stems
    for stem in stems:
        with Image.open(target / f"{stem}.png") as result, Image.open(next(control.glob(f"{stem}.*"))) as source:
            assert result.size == (512, 512)
            ratio = source.size[0] / source.size[1]
            assert abs(ratio - 1) <= 0.02, (stem, source.size)
        assert (target / f"{stem}.txt").read_text(encoding="utf-8").strip() == "turn it into a watercolour"
    written = [p for p in out.rglob("*") if p.is_file()]
    assert all(p.suffix == p.suffix.lower() for p in written), written  # ai-toolkit misses `.PNG` on Linux
    assert control.parent == target.parent == out  # sibling folders, never the control inside the target
    assert (out / "manifest.jsonl").exists()
    assert "sk-live" not in (out / "manifest.jsonl").read_text()
    assert gateway_keys(fake) == [f"Bearer {key}"]


def test_g_emergency_stop_then_resume(page, server, fake, tmp_path):
    key = "sk-live-Stop4321"
    url = fake.url(f"latency.s=2.5.key={key}", CHAT)
    folder = make_photos(tmp_path / "photos", MIXED[:6])
    fill_profile(page, url, key, concurrency=3)
    save_settings(page)
    pick_folder(page, folder, 6)
    run_id = start_run(page)
    page.wait_for_function("document.querySelectorAll('[data-testid=task-card][data-status=running]').length === 3",
                           timeout=WAIT_MS)
    with page.expect_response(lambda r: r.url.endswith("/api/stop") and r.request.method == "POST") as answer:
        page.click("[data-testid=stop-all]")  # the confirm dialog is accepted
    assert answer.value.status == 200, answer.value.text()
    sent = len(image_calls(fake))
    progress = idle(server, run_id)["progress"]
    assert progress["pending"] == progress["running"] == 0 and progress["failed"] == 0, progress
    assert progress["stopped"] == 6 - progress["done"] and progress["stopped"] >= 3, progress
    wait_chip(page, "stopped", progress["stopped"])
    page.wait_for_function(
        "(n) => document.querySelectorAll('[data-testid=task-card][data-status=stopped]').length === n",
        arg=progress["stopped"], timeout=WAIT_MS)
    assert len(image_calls(fake)) == sent  # nothing new was sent after the stop
    click_run_button(page, "resume")
    wait_all_done(page, server, run_id, 6)
    wait_history_done(page, run_id, 6, 6)
    assert gateway_keys(fake) == [f"Bearer {key}"]


# Hostile values per profile field. Refused: the page must say which field, nothing is stored.
REFUSED = [
    ("api_key", "sk-ａbc"),            # a full-width letter from an input method
    ("api_key", "sk-live 123"),        # a space inside
    ("api_key", "sk-🔑-key"),
    ("api_url", "ftp://x"),
    ("api_url", "http://"),
    ("api_url", "127.0.0.1:8000/v1"),
    ("api_url", "http://127.0.0.1:99999/v1"),
    ("concurrency", "1000000"),
    ("concurrency", "-3"),
    ("max_retries", "99999999999999999999"),
    ("timeout_s", "-1"),
    ("temperature", "7"),
    ("max_tokens", "-5"),
    ("n", "0"),
    ("source_max_side", "-1"),
    ("source_max_bytes", "1e30"),
    ("extra_headers", "{not json"),
    ("extra_headers", '{"X-Note": "line one\\nline two"}'),
    ("extra_headers", '{"Bad Header": "x"}'),
    ("extra_headers", '{"X-Emoji": "🎨"}'),
    ("extra_headers", "[1, 2]"),
    ("extra_body", '{"a": '),
    ("extra_body", '"just a string"'),
    ("proxy_url", "ftp://127.0.0.1:21"),
    ("proxy_url", "http://me:secret@127.0.0.1:3128"),  # a login belongs in PROXY_URL, never on the page
]
# Odd but legitimate: accepted and stored as typed (trimmed where the server trims).
ACCEPTED = [
    ("system_prompt", "Keep the 🎨 style; 保持风格\nsecond line"),
    ("model", "grok-imagine-1.0-edit"),
]


def field_labels(page) -> dict[str, str]:
    """Each profile field's visible label, as a user reads it next to the input."""
    return page.evaluate("""() => Object.fromEntries([...document.getElementById('api-form').elements]
        .filter((el) => el.name)
        .map((el) => [el.name, el.closest('label')?.querySelector('span')?.textContent.trim() || el.name]))""")


def dismiss_toasts(page) -> None:
    """Click every toast away (success toasts may vanish on their own meanwhile)."""
    for toast in page.locator(".toast").all():
        try:
            toast.click(timeout=1000)
        except playwright_api.Error:
            pass
    page.wait_for_function("document.querySelectorAll('.toast').length === 0", timeout=WAIT_MS)


def test_h_profile_form_fuzz(page, server, fake, tmp_path):
    key = "sk-live-Fuzz0000"
    url = fake.url(f"g3_stream_dataurl.key={key}", CHAT)
    fill_profile(page, url, key)
    save_settings(page)
    open_advanced(page)
    labels = field_labels(page)
    baseline = server.get("/api/settings").json()
    form_baseline = {name: page.input_value(f"#api-form [name={name}]") for name, _ in REFUSED + ACCEPTED}
    dismiss_toasts(page)
    problems: list[str] = []
    outcomes: list[str] = []  # what the user read for each value (printed: -s shows them)
    for name, value in REFUSED:
        field = page.locator(f"#api-form [name={name}]")
        field.fill(value)
        page.click("[data-testid=save-settings]")
        native = field.evaluate("(el) => el.validationMessage")
        if native:  # the browser's own check (min/max of a number input) stopped the form: fine
            outcomes.append(f"{name}={value!r}: browser says {native!r}")
            field.fill(form_baseline[name])
            continue
        try:
            page.locator(".toast").first.wait_for(timeout=5_000)
        except playwright_api.TimeoutError:
            problems.append(f"{name}={value!r}: no message at all")
            field.fill(form_baseline[name])
            continue
        errors, oks = toasts(page, "error"), toasts(page, "ok")
        message = " | ".join(errors + oks)
        outcomes.append(f"{name}={value!r}: {message}")
        if not errors:
            problems.append(f"{name}={value!r}: accepted ({message})")
        elif not any(name in e or labels[name].lower() in e.lower() for e in errors):
            problems.append(f"{name}={value!r}: the message does not name the field: {message}")
        if CRASH_WORDS.search(message):
            problems.append(f"{name}={value!r}: crash text: {message}")
        now = server.get("/api/settings").json()
        if now != baseline or stored_key(server) != key:
            problems.append(f"{name}={value!r}: stored settings changed")
            baseline = now
        field.fill(form_baseline[name])
        dismiss_toasts(page)
    print("\n".join(outcomes))
    assert problems == [], "\n".join(problems)
    # The mask pasted back into the key field stands for the stored key: nothing changes.
    page.fill("[data-testid=api-key]", MASK)
    page.click("[data-testid=save-settings]")
    page.locator(".toast").first.wait_for(timeout=10_000)
    assert stored_key(server) == key and not CRASH_WORDS.search(" ".join(toasts(page, "error")))
    page.fill("[data-testid=api-key]", "")
    dismiss_toasts(page)
    # A pasted key with a line break or a trailing space is trimmed and works.
    for pasted in (f"{key}\n", f"{key} ", f" {key}\t"):
        page.fill("[data-testid=api-key]", pasted)
        save_settings(page)
        assert stored_key(server) == key, repr(pasted)
    for name, value in ACCEPTED:
        page.fill(f"#api-form [name={name}]", value)
        answer = save_settings(page)
        assert answer["api"][name] == value
    dismiss_toasts(page)
    listed = test_connection(page)
    assert "gpt-image-1" in listed, listed
    assert gateway_keys(fake) == [f"Bearer {key}"]
    assert_no_crash_text(page)
    # A bad number typed under Advanced, then Advanced folded: Save must still tell the user why.
    page.fill("#api-form [name=temperature]", "7")
    page.click("[data-testid=advanced] > summary")
    assert page.get_attribute("[data-testid=advanced]", "open") is None
    page.click("[data-testid=save-settings]")
    try:
        page.wait_for_function(
            """() => [...document.querySelectorAll('.toast-error')].some((t) => /temperature/i.test(t.textContent))
                     || (document.querySelector('[data-testid=advanced]').open
                         && document.activeElement === document.querySelector('#api-form [name=temperature]'))""",
            timeout=5_000)
    except playwright_api.TimeoutError:
        console = list(page.watch.console_errors)
        page.watch.console_errors.clear()  # reported here, once
        pytest.fail("temperature=7 under a folded Advanced: Save settings did nothing and said nothing "
                    f"(toasts: {toasts(page, 'error')}, browser console: {console})")


# --------------------------------------------------------------------------- examples and the README's picture


ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"


def make_landscapes(folder: Path, count: int) -> Path:
    """Write small landscape pictures (sky, sun, hills, lake), each a little different, as PNG and JPEG."""
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(1, count + 1):
        width, height = 320, 240
        image = Image.new("RGB", (width, height))
        draw = ImageDraw.Draw(image)
        top, bottom = (70 + index * 9 % 60, 140 + index * 7 % 70, 215), (230, 215 - index * 5 % 60, 170)
        for y in range(150):  # sky: a vertical gradient
            t = y / 150
            draw.line((0, y, width, y), fill=tuple(round(a + (b - a) * t) for a, b in zip(top, bottom)))
        sun_x = 40 + index * 53 % 240
        draw.ellipse((sun_x - 18, 50 + index % 4 * 12, sun_x + 18, 86 + index % 4 * 12), fill=(255, 236, 170))
        far = [(0, 150)] + [(x, 110 + (x * (index + 3)) % 37) for x in range(0, width + 40, 40)] + [(width, 150)]
        draw.polygon(far, fill=(96, 110 + index * 6 % 40, 140))
        near = [(0, 170)] + [(x, 128 + (x * (index + 7)) % 29) for x in range(0, width + 30, 30)] + [(width, 170)]
        draw.polygon(near, fill=(52, 96 + index * 5 % 50, 70))
        draw.rectangle((0, 170, width, height), fill=(60, 110, 150 + index * 4 % 50))  # the lake
        for x in range(8 + index * 11 % 40, width, 70):  # pines on the shore
            draw.polygon([(x, 176), (x + 9, 140 - index % 3 * 6), (x + 18, 176)], fill=(24, 60, 40))
        name = folder / f"lake{index:02d}.{'jpg' if index % 4 == 0 else 'png'}"
        image.save(name, **({"quality": 92} if name.suffix == ".jpg" else {}))
    return folder


def apply_preset(page, kind: str, name: str) -> None:
    """Pick a preset by name in the API or save picker and click its Apply."""
    picker = "[data-testid=api-preset]" if kind == "api" else "#save-preset"
    page.wait_for_function("([picker, name]) => [...document.querySelectorAll(`${picker} option`)]"
                           ".some((o) => o.value === name)", arg=[picker, name], timeout=WAIT_MS)
    page.select_option(picker, name)
    page.click("[data-testid=api-preset-apply]" if kind == "api" else "#save-preset-apply")


def test_i_example_presets_then_a_review_for_the_readme(page, server, fake, tmp_path):
    """Import web_data/'s examples with Import config, start from a preset, review, save; the README's screenshot."""
    key = "sk-live-Readme2026"
    url = fake.url(f"restyle.refuse=4.key={key}", CHAT)
    for example in ("settings.example.json", "presets.example.json"):
        with page.expect_response(lambda r: r.url.endswith("/api/config/import")) as answer:
            page.set_input_files("#config-import", str(ROOT / "web_data" / example))
        assert answer.value.status == 200, answer.value.text()
    open_profile(page)
    page.wait_for_function("document.querySelector('[data-testid=api-url]').value === 'http://127.0.0.1:8000/v1'")
    with page.expect_response(lambda r: r.url.endswith("/apply") and r.request.method == "POST") as answer:
        apply_preset(page, "api", "grok2api chat (local)")
    assert answer.value.status == 200, answer.value.text()
    page.wait_for_function("document.querySelector('[data-testid=api-model]').value === 'grok-imagine-image-edit'",
                           timeout=WAIT_MS)  # the form is filled once the answer is read
    page.fill("[data-testid=api-url]", url)  # the example's gateway address, changed to where mine listens
    page.fill("[data-testid=api-key]", key)
    save_settings(page)
    assert stored_key(server) == key
    folder = make_landscapes(tmp_path / "lakes", 12)
    pick_folder(page, folder, 12)
    run_id = start_run(page, "make the sky purple at dusk")
    final = wait_settled(page, server, run_id)
    assert (final["progress"]["done"], final["progress"]["failed"]) == (11, 1), final["progress"]
    failed = cards(page, "failed").first
    assert "safety system" in failed.inner_text() and "400" in failed.inner_text()
    # Review with the keyboard: pick a result in the first four tasks (the third gets its second version).
    page.locator("[data-testid=task-card]").first.locator("[data-testid=result-image]").first.click()
    page.locator("[data-testid=viewer]").wait_for(state="visible")
    for number in range(4):
        if number == 2:
            page.keyboard.press("ArrowDown")
        space_selects_and_moves_on(page)
    page.keyboard.press("Escape")
    page.locator("[data-testid=viewer]").wait_for(state="hidden")
    page.set_viewport_size({"width": 1600, "height": 1000})
    page.mouse.move(0, 0)
    page.evaluate("() => document.querySelector('aside.sidebar').scrollTo(0, 0)")  # the form from its top
    dismiss_toasts(page)
    page.wait_for_function("[...document.querySelectorAll('[data-testid=result-image]')].slice(0, 12)"
                           ".every((img) => img.complete && img.naturalWidth > 0)", timeout=WAIT_MS)
    DOCS.mkdir(exist_ok=True)
    page.screenshot(path=str(DOCS / "screenshot.png"))  # the README's picture: mid-review, one refusal on screen
    # Retry the refused one, then save the chosen pairs with the example's ai-toolkit save preset.
    click_run_button(page, "retry-failed")
    wait_all_done(page, server, run_id, 12)
    page.click("#open-save")
    apply_preset(page, "save", "ai-toolkit Kontext, Qwen-Image-Edit")
    form = page.locator("#save-form")
    assert form.locator("[name=layout]").input_value() == "aitoolkit_edit"
    out = tmp_path / "datasets"
    form.locator("[name=output_dir]").fill(str(out))
    form.locator("[type=submit]").click()
    target = out / "my_edit_dataset_target"
    wait_until(lambda: len(list(target.glob("*.png"))) == 4, what="the four chosen pairs on disk")
    stems = sorted(p.stem for p in folder.iterdir())[:4]
    assert sorted(p.stem for p in target.glob("*.png")) == stems
    assert sorted(p.stem for p in (out / "my_edit_dataset_control").iterdir()) == stems
    assert (target / f"{stems[0]}.txt").read_text(encoding="utf-8").strip() == "make the sky purple at dusk"
    assert gateway_keys(fake) == [f"Bearer {key}"]


# --------------------------------------------------------------------------- prompt sources


def sent_chat(call) -> tuple[str, list[bytes]]:
    """(prompt, input images) of a chat call the gateway received."""
    import base64

    content = call.json["messages"][-1]["content"]
    if isinstance(content, str):
        return content, []
    text = next(part["text"] for part in content if part["type"] == "text")
    return text, [base64.b64decode(p["image_url"]["url"].split(",", 1)[1]) for p in content if p["type"] == "image_url"]


def choose_mode(page, mode: str) -> None:
    """Click a mode of the run form's switch (edit / generate / table)."""
    page.click(f"[data-testid=mode-switch] label:has([value={mode}])")
    page.wait_for_function("(m) => document.querySelector('#run-form').dataset.mode === m", arg=mode)


def output_text(page, testid: str, contains: str) -> str:
    """Wait until an output box shows `contains`; return its text."""
    page.wait_for_function("([id, text]) => { const o = document.querySelector(`[data-testid=${id}]`);"
                           " return o && !o.hidden && o.textContent.includes(text); }", arg=[testid, contains],
                           timeout=WAIT_MS)
    return page.inner_text(f"[data-testid={testid}]")


def click_start(page, status: int = 201):
    """Click Start run; return the server's answer (status checked)."""
    with page.expect_response(lambda r: r.url.endswith("/api/runs") and r.request.method == "POST") as answer:
        page.click("[data-testid=start-run]")
    assert answer.value.status == status, answer.value.text()
    return answer.value.json()


def test_sources_edit_with_captions_and_reference_folder(page, server, fake, tmp_path):
    folder = make_photos(tmp_path / "photos", MIXED[:4])
    refs = make_photos(tmp_path / "refs", [(40, 40)] * 4)  # same stems: photo01 … photo04
    names = sorted(p.stem for p in folder.iterdir())
    for stem in names[:3]:
        (folder / f"{stem}.txt").write_text(f"a photo called {stem}", encoding="utf-8")
    fill_profile(page, fake.url("g3_stream_dataurl", CHAT), None)
    page.fill("[data-testid=path-input]", str(folder))
    page.fill("[data-testid=prompt-input]", "{caption}, as a watercolour")
    page.fill("[data-testid=reference-dirs]", str(refs))
    page.click("#scan")
    text = output_text(page, "scan-output", "with a caption")
    assert "4 images found" in text and "3 of 4 with a caption (.txt)" in text, text
    assert f"these would be refused: {names[3]}" in text and "References: 4 of 4 matched in 1 folder(s)" in text, text
    refused = click_start(page, 400)
    assert [f["name"] for f in refused["files"]] == [p.name for p in sorted(folder.glob(f"{names[3]}.*"))]
    assert names[3] in output_text(page, "scan-output", "no usable sidecar") and image_calls(fake) == []
    (folder / f"{names[3]}.txt").write_text("the last one", encoding="utf-8")  # the user writes the missing caption
    page.click("#scan")
    output_text(page, "scan-output", "4 of 4 with a caption")
    run_id = click_start(page)["run_id"]
    wait_all_done(page, server, run_id, 4)
    sources = sorted(p for p in folder.iterdir() if p.suffix != ".txt")
    expected = {(f"a photo called {p.stem}" if p.stem != names[3] else "the last one") + ", as a watercolour":
                [p.read_bytes(), next(refs.glob(f"{p.stem}.*")).read_bytes()] for p in sources}
    assert dict(sent_chat(call) for call in image_calls(fake)) == expected
    wait_shown(page, "[data-testid=ref-thumb]", 4)  # each card shows its reference
    page.locator("[data-testid=task-card]").first.locator("[data-testid=result-image]").first.click()
    page.locator("[data-testid=viewer]").wait_for(state="visible")
    assert page.inner_text("[data-testid=caption-source]") == "Source"
    assert "Made with: a photo called photo01, as a watercolour" in page.inner_text("[data-testid=result-prompt]")
    page.keyboard.press("i")  # the next input image: the reference
    page.wait_for_function("document.querySelector('[data-testid=caption-source]').textContent === 'Reference 1'")
    page.wait_for_function("document.querySelector('[data-testid=viewer-source]').naturalWidth === 40")
    assert page.locator("[data-testid=viewer-inputs] img").count() == 2


def test_sources_generate_with_variables_and_a_count(page, server, fake, tmp_path):
    fill_profile(page, fake.url("images_g3_json", "/v1/images/generations"), None, model="grok-imagine-image")
    choose_mode(page, "generate")
    assert not page.locator("[data-testid=path-input]").is_visible()
    page.click("[data-testid=prompt-input]")
    page.keyboard.type("a {animal} in the {weather}")  # typed: each {name} gets its row
    rows = page.locator("[data-testid=variable-row]")
    rows.nth(1).wait_for()
    assert [rows.nth(i).locator(".var-name").input_value() for i in range(2)] == ["animal", "weather"]
    rows.nth(0).locator(".var-values").click()
    page.keyboard.type("cat, dog")
    page.keyboard.press("Tab")  # to the row's ✕, then on to the next row's name and values
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    page.keyboard.type("snow，rain, fog")  # a Chinese comma separates values too
    assert "No values yet" not in page.inner_text("[data-testid=task-count]")
    page.fill("[data-testid=count-input]", "2")
    assert output_text(page, "task-count", "12 tasks").startswith("12 tasks (2 × 3 × 2)")
    run_id = click_start(page)["run_id"]
    wait_all_done(page, server, run_id, 12)
    prompts = sorted(call.json["prompt"] for call in image_calls(fake))
    assert prompts == sorted(f"a {a} in the {w}" for a in ("cat", "dog") for w in ("snow", "rain", "fog") for _ in (1, 2))
    tasks = listing(server, run_id)["tasks"]
    assert [t["source_name"] for t in tasks][:4] == ["cat_snow_1", "cat_snow_2", "cat_rain_1", "cat_rain_2"]
    assert all(t["output_name"] == t["source_name"] for t in tasks)
    assert page.locator("[data-testid=task-card] .name").first.inner_text() == "cat_snow_1"
    assert "a {animal} in the {weather}" in page.inner_text("#run-title")


def test_sources_table_with_bad_rows_then_a_good_one_and_export(page, server, fake, tmp_path):
    from openpyxl import Workbook, load_workbook

    photos = make_photos(tmp_path / "photos", MIXED[:2])
    first, second = sorted(photos.iterdir())
    refs = make_photos(tmp_path / "refs", [(40, 40)])
    ref = next(refs.iterdir())

    def workbook(path: Path, rows: list[list]) -> Path:
        book = Workbook()
        for row in rows:
            book.active.append(row)
        book.save(path)
        return path

    header = ["源图", "提示词", "数量", "文件名", "参考图"]
    bad = workbook(tmp_path / "bad.xlsx", [header, [str(first), "把天空改成紫色", 1, "sky", ""],
                                           ["photos/missing.png", "x", 1, "", ""], ["", "", 1, "", ""],
                                           ["", "a fox", 101, "sky", ""]])
    fill_profile(page, fake.url("g3_stream_dataurl", CHAT), None)
    choose_mode(page, "table")
    assert not page.locator("[data-testid=prompt-input]").is_visible()
    page.fill("[data-testid=table-path]", str(bad))
    page.click("[data-testid=table-check]")
    text = output_text(page, "table-output", "Row 5")
    assert f"Row 3: source image not found: {tmp_path / 'photos' / 'missing.png'}" in text, text
    assert "Row 4: empty prompt" in text and "count 101 is out of range (1-100); duplicate output name 'sky'" in text
    refused = click_start(page, 400)  # Start refuses the same rows: nothing runs
    assert [row["row"] for row in refused["rows"]] == [3, 4, 5] and image_calls(fake) == []
    good = workbook(tmp_path / "good.xlsx", [header, [str(first), "把天空改成紫色", 1, "sky", ""],
                                             [str(second), "hold the cup", 2, "", str(ref)], ["", "a fox", 1, "fox", ""]])
    page.fill("[data-testid=table-path]", str(good))
    page.click("[data-testid=table-check]")
    assert "3 rows → 4 tasks, ready to start" in output_text(page, "table-output", "ready to start")
    run_id = click_start(page)["run_id"]
    wait_all_done(page, server, run_id, 4)
    sent = sorted(sent_chat(call) for call in image_calls(fake))
    assert sent == sorted([("把天空改成紫色", [first.read_bytes()]), ("hold the cup", [second.read_bytes(), ref.read_bytes()]),
                           ("hold the cup", [second.read_bytes(), ref.read_bytes()]), ("a fox", [])])
    assert page.inner_text("#run-title") == "Table: good.xlsx"
    with page.expect_download() as download:
        page.click("[data-testid=export-xlsx]")
    exported = tmp_path / "exported.xlsx"
    download.value.save_as(exported)
    rows = [[cell.value for cell in row] for row in load_workbook(exported).active.iter_rows()]
    assert rows[0][-6:] == ["status", "error", "results", "calls", "cost", "currency"]
    assert [(row[3], row[-6]) for row in rows[1:]] == [("sky", "done"), (f"{second.stem}_1", "done"),
                                                        (f"{second.stem}_2", "done"), ("fox", "done")]
    assert rows[1][-4] == "sky_1.jpg; sky_2.png"  # the names the run's ZIP gives its results (orange JPEG, red PNG)
    with page.expect_download() as template:
        page.click("[data-testid=template-xlsx]")
    assert template.value.suggested_filename == "prompt-table-template.xlsx"


def test_sources_reprompt_then_continue_from_a_result(page, server, fake, tmp_path):
    folder = make_photos(tmp_path / "photos", MIXED[:2])
    fill_profile(page, fake.url("latency_jpeg.s=0.unique=1", CHAT), None)
    pick_folder(page, folder, 2)
    run_id = start_run(page, "make it blue")
    wait_all_done(page, server, run_id, 2)
    card = page.locator("[data-testid=task-card]").first
    card.locator("[data-action=reprompt]").click()  # the card's Edit prompt opens the viewer at the prompt
    page.locator("[data-testid=viewer]").wait_for(state="visible")
    box = page.locator("[data-testid=viewer-prompt]")
    page.wait_for_function("document.activeElement === document.querySelector('[data-testid=viewer-prompt]')")
    assert box.input_value() == "make it blue"
    page.keyboard.press("Control+A")
    page.keyboard.type("make it green")
    page.click("[data-testid=viewer-reprompt]")
    page.wait_for_function("document.querySelector('.viewer-result-info').textContent.startsWith('1/2')", timeout=WAIT_MS)
    task = listing(server, run_id)["tasks"][0]
    assert task["prompt"] == "make it green" and [r["prompt"] for r in task["results"]] == ["make it blue", "make it green"]
    assert sent_chat(image_calls(fake)[-1])[0] == "make it green"
    page.keyboard.press("ArrowDown")  # the second result: made with the new prompt
    page.wait_for_function("document.querySelector('[data-testid=result-prompt]').textContent === 'Made with: make it green'")
    page.keyboard.press("ArrowUp")  # the first: the old prompt, marked as older
    page.wait_for_function("document.querySelector('[data-testid=result-prompt]').textContent === 'Made with: make it blue'")
    assert "is-older" in page.get_attribute("[data-testid=result-prompt]", "class")
    second = task["results"][1]
    page.keyboard.press("ArrowDown")
    box.fill("now add snow")
    page.click("[data-testid=viewer-continue]")
    # The viewer moves to the new task at the end of the run; its source is the result.
    page.wait_for_function("document.querySelector('.viewer-title').textContent.includes('_step2')", timeout=WAIT_MS)
    final = wait_all_done(page, server, run_id, 3)
    step = final["tasks"][-1]
    assert step["source_name"] == f"{Path(task['source_name']).stem}_step2.jpg" and step["parent"]["result_id"] == second["id"]
    image = server.get(f"/api/results/{second['id']}/image").content
    assert sent_chat(image_calls(fake)[-1]) == ("now add snow", [image])
    page.keyboard.press("Escape")
    wait_shown(page, "[data-testid=task-card]", 3)
    assert page.locator("[data-testid=task-card] .origin").nth(2).inner_text() == "↳"


def test_sources_saved_prompts_move_to_the_server(page, server, fake, tmp_path):
    page.evaluate("localStorage.setItem('ibc.snippets', JSON.stringify({'old retro': 'make it look like 1970'}))")
    page.reload()  # an older version left this browser's saved prompts in localStorage
    page.wait_for_selector("body[data-ready=true]", timeout=10_000)
    page.wait_for_function("[...document.querySelectorAll('#snippets option')].some((o) => o.value === 'old retro')",
                           timeout=WAIT_MS)
    assert "1 saved prompt moved from this browser to the console" in " ".join(toasts(page, "ok"))
    assert page.evaluate("localStorage.getItem('ibc.snippets')") is None
    assert server.get("/api/snippets").json()["snippets"] == [{"name": "old retro", "text": "make it look like 1970"}]
    page.fill("[data-testid=prompt-input]", "make it blue")
    page.watch.prompt_answer = "blue"
    page.click("[data-testid=snippet-save]")
    page.wait_for_function("document.querySelector('#snippets').value === 'blue'", timeout=WAIT_MS)
    page.select_option("[data-testid=snippets]", "old retro")
    assert page.input_value("[data-testid=prompt-input]") == "make it look like 1970"
    page.fill("[data-testid=prompt-input]", "make it look like 1975")  # edit: save again under the same name
    page.watch.prompt_answer = "old retro"
    page.click("[data-testid=snippet-save]")
    wait_until(lambda: {"name": "old retro", "text": "make it look like 1975"} in server.get("/api/snippets").json()["snippets"],
               what="the edited prompt on the server")
    page.watch.prompt_answer = "retro"
    page.click("[data-testid=snippet-rename]")
    page.wait_for_function("document.querySelector('#snippets').value === 'retro'", timeout=WAIT_MS)
    page.select_option("[data-testid=snippets]", "blue")
    page.click("[data-testid=snippet-delete]")
    wait_until(lambda: [s["name"] for s in server.get("/api/snippets").json()["snippets"]] == ["retro"],
               what="the deleted prompt gone")
    exported = server.get("/api/config/export").json()
    assert exported["snippets"] == {"retro": "make it look like 1975"}
    page.reload()  # still there: they live on the server now
    page.wait_for_selector("body[data-ready=true]", timeout=10_000)
    page.wait_for_function("[...document.querySelectorAll('#snippets option')].map((o) => o.value).join() === ',retro'",
                           timeout=WAIT_MS)


# --------------------------------------------------------------------------- rate limits


def test_rate_limits_slow_the_run_and_an_exhausted_quota_pauses_it_until_resumed(page, server, fake, tmp_path):
    key = "sk-live-Quota777"
    url = fake.url(f"ratelimited.every=3.retry_after=0.3.quota_after=8.key={key}", CHAT)
    folder = make_photos(tmp_path / "photos", MIXED[:6] + MIXED[:6], prefix="batch")
    fill_profile(page, url, key, concurrency=3)
    save_settings(page)
    pick_folder(page, folder, 12)
    run_id = start_run(page)
    final = idle(server, run_id)
    progress = final["progress"]
    assert progress["failed"] == 0 and progress["done"] >= 8 and progress["done"] + progress["stopped"] == 12, progress
    page.wait_for_function("document.querySelector('[data-testid=cooling]')?.textContent.includes('upstream_quota_exhausted')",
                           timeout=WAIT_MS)
    shown = page.inner_text("[data-testid=cooling]")
    assert shown.startswith("Paused — 429 from the gateway (upstream_quota_exhausted)"), shown
    wait_chip(page, "stopped", progress["stopped"])
    page.screenshot(path=str(ARTIFACTS / "journey_quota_paused.png"))
    fake.reset()  # the next morning: the quota is back
    click_run_button(page, "resume")
    wait_all_done(page, server, run_id, 12)
    page.wait_for_function("document.querySelector('[data-testid=cooling]').hidden", timeout=WAIT_MS)
    assert gateway_keys(fake) == [f"Bearer {key}"]
    assert_no_crash_text(page)


# --------------------------------------------------------------------------- saving


def make_squares(folder: Path, names: list[str]) -> Path:
    """Write small square PNG pictures (a disc on a coloured ground), each one different."""
    folder.mkdir(parents=True, exist_ok=True)
    for index, name in enumerate(names):
        image = Image.new("RGB", (64, 64), (20 + index * 37 % 200, 90 + index * 13 % 120, 160))
        ImageDraw.Draw(image).ellipse((12 + index % 9, 12, 52, 52 - index % 7), fill=(240, 210, 60))
        image.save(folder / name)
    return folder


def files_and_times(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}


def save_now(page, count_text: str) -> None:
    """Click Save now and wait for the report's counts to start with `count_text` ("2 saved")."""
    page.locator("#save-form [type=submit]").click()
    page.wait_for_function("(text) => document.querySelector('[data-testid=save-report] .report-counts')"
                           "?.textContent.startsWith(text)", arg=count_text, timeout=WAIT_MS)


def test_saving_an_older_console_preset_never_twice_with_the_saved_mark(page, server, fake, tmp_path):
    """A user of the older console saves start→end pairs with its preset; saving again writes nothing."""
    key = "sk-live-Saving11"
    fill_profile(page, fake.url(f"latency.s=0.key={key}", CHAT), key)
    save_settings(page)
    names = [f"{n:03d}_start.png" for n in range(1, 7)]
    folder = make_squares(tmp_path / "pairs", names)
    pick_folder(page, folder, 6)
    run_id = start_run(page, "turn the disc into a moon")
    wait_all_done(page, server, run_id, 6)
    # Select the first two results with the keyboard, as the older console's users review.
    page.locator("[data-testid=task-card]").first.locator("[data-testid=result-image]").first.click()
    page.locator("[data-testid=viewer]").wait_for(state="visible")
    for _ in range(2):
        space_selects_and_moves_on(page)
    page.keyboard.press("Escape")
    page.click("#open-save")
    page.wait_for_function("document.querySelectorAll('[data-testid=save-builtin] option').length === 6")
    page.select_option("[data-testid=save-builtin]", label="AI-Toolkit edit (start→end, no txt)")
    page.click("[data-testid=save-builtin-apply]")
    form = page.locator("#save-form")
    assert form.locator("[name=template]").input_value() == "{src_stem}"
    assert (form.locator("[name=replace_from]").input_value(), form.locator("[name=replace_to]").input_value()) == (
        "start", "end")
    form.locator("[name=output_dir]").fill(str(folder))  # next to the sources, as its users did
    save_now(page, "2 saved")
    assert sorted(p.name for p in folder.iterdir()) == sorted(names + ["001_end.png", "002_end.png", "manifest.jsonl"])
    page.wait_for_function("document.querySelectorAll('[data-testid=saved-mark]').length === 2", timeout=WAIT_MS)
    before = files_and_times(folder)
    save_now(page, "0 saved")  # again: nothing is written twice
    report = page.locator("[data-testid=save-report]")
    remembered = report.locator("[data-reason=saved_before]")
    assert remembered.locator("li b").all_inner_texts() == ["001_start.png", "002_start.png"]
    assert "001_end.png" in remembered.inner_text() and "Save again" in remembered.inner_text()
    assert files_and_times(folder) == before
    report.screenshot(path=str(ARTIFACTS / "journey_saving_never_twice_report.png"))
    page.click("#save-close")
    # The filter shows what no save has written yet; ticked with the keyboard.
    page.focus("[data-testid=filter-unsaved]")
    page.keyboard.press(" ")
    page.wait_for_function("document.querySelectorAll('[data-testid=task-card]').length === 4", timeout=WAIT_MS)
    shown = sorted(page.locator("[data-testid=task-card] .name").all_inner_texts())
    assert shown == names[2:]
    assert gateway_keys(fake) == [f"Bearer {key}"]


def test_saving_a_big_save_shows_progress_cancels_cleanly_and_goes_on(page, server, fake, tmp_path):
    """A long save (WebP, fal's layout) shows its progress; Cancel leaves whole pairs only; saving again finishes."""
    from tests.trainers import read_fal, read_musubi

    fill_profile(page, fake.url("latency.s=0", CHAT), None, concurrency=16)
    save_settings(page)
    count = 120
    folder = make_squares(tmp_path / "photos", [f"p{n:03d}.png" for n in range(1, count + 1)])
    pick_folder(page, folder, count)
    run_id = start_run(page, "paint it in watercolour")
    wait_all_done(page, server, run_id, count, timeout=120)
    page.click("#open-save")
    form = page.locator("#save-form")
    out = tmp_path / "datasets"
    form.locator("[name=output_dir]").fill(str(out))
    form.locator("[name=layout]").select_option("fal_start_end")
    form.locator("[name=name]").fill("watercolour")
    form.locator("[name=format]").select_option("webp")  # slow to encode: a save long enough to watch
    form.locator("[name=conform]").select_option("pad")
    form.locator("[name=only_selected]").uncheck()
    form.locator("[type=submit]").click()
    progress = page.locator("[data-testid=save-progress]")
    page.wait_for_function("/Writing [1-9]/.test(document.querySelector('[data-testid=save-progress]')?.textContent)",
                           timeout=WAIT_MS)
    progress.screenshot(path=str(ARTIFACTS / "journey_saving_progress.png"))
    page.click("[data-testid=save-cancel]")
    page.locator("[data-testid=save-cancelled]").wait_for(timeout=WAIT_MS)
    assert progress.is_hidden()
    dataset = out / "watercolour"
    first = read_fal(dataset)
    lines = (out / "manifest.jsonl").read_text("utf-8").splitlines()
    assert first.problems == [] and 0 < len(first.samples) == len(lines) < count  # whole pairs only
    assert not [p for p in dataset.iterdir() if p.name.startswith(".tmp-")]
    assert f"{count - len(lines)} items not written" in page.inner_text("[data-testid=save-cancelled]")
    save_now(page, f"{count - len(lines)} saved")  # saving again goes on where it stopped
    page.click("[data-testid=save-report] [data-testid=report-skips] summary")  # the expected skips come folded
    remembered = page.locator("[data-testid=save-report] [data-reason=saved_before] h4").inner_text()
    assert f"({len(lines)})" in remembered
    done = read_fal(dataset)
    assert done.problems == [] and len(done.samples) == count
    assert all(s.caption == "paint it in watercolour" for s in done.samples)
    # A backward dataset: the result as the control, the source as the target, for musubi.
    form.locator("[name=layout]").select_option("musubi")
    form.locator("[name=name]").fill("backward")
    form.locator("[name=format]").select_option("png")
    form.locator("[name=role_swap]").check()
    save_now(page, f"{count} saved")
    swapped = read_musubi(out / "backward/image", out / "backward/control")
    assert swapped.problems == [] and len(swapped.samples) == count
    sample = swapped.by_target_stem()["p001"]
    with Image.open(sample.target) as target, Image.open(folder / "p001.png") as source:
        assert target.size == source.size and target.convert("RGB").tobytes() == source.convert("RGB").tobytes()
    page.locator("[data-testid=save-report]").screenshot(path=str(ARTIFACTS / "journey_saving_after_cancel.png"))


# --------------------------------------------------------------------------- more upstreams: Gemini, Seedream, a proxy


def result_images(server: ServerProcess, listed: dict) -> list[bytes]:
    """The bytes of every result of the listed tasks, as the server serves them."""
    return [server.get(f"/api/results/{r['id']}/image").content for task in listed["tasks"] for r in task["results"]]


def test_gemini_run_from_the_page(page, server, fake, tmp_path):
    key = "AIza-Journey-Gemini-1"
    folder = make_photos(tmp_path / "photos", MIXED[:4])
    open_profile(page)
    page.select_option("[data-testid=api-mode]", "gemini")  # the empty fields now show Gemini's examples
    assert page.get_attribute("[data-testid=api-url]", "placeholder") == "https://generativelanguage.googleapis.com/v1beta"
    assert page.get_attribute("[data-testid=api-model]", "placeholder") == "gemini-2.5-flash-image"
    fill_profile(page, fake.url(f"gemini.gkey={key}.edit=1", "/v1beta"), None, model="gemini-2.5-flash-image")
    page.click("[data-testid=api-key]")
    page.keyboard.type(key)
    open_advanced(page)
    page.fill("#api-form [name=size]", "4:3")
    saved = save_settings(page)
    assert saved["api"]["api_mode"] == "gemini" and saved["api"]["api_key"] == MASK and stored_key(server) == key
    listed = test_connection(page)
    assert "gemini-2.5-flash-image" in listed and "gemini-3-pro-image-preview" in listed, listed
    pick_folder(page, folder, 4)
    run_id = start_run(page, "make it dusk")
    final = wait_all_done(page, server, run_id, 4)
    wait_shown(page, "[data-testid=result-image]", 4)
    calls = image_calls(fake)
    assert len(calls) == 4 and all(r.path.endswith("/v1beta/models/gemini-2.5-flash-image:streamGenerateContent")
                                   for r in calls)
    assert all(r.headers.get("x-goog-api-key") == key and "authorization" not in r.headers for r in fake.requests)
    assert all(r.json["generationConfig"]["imageConfig"] == {"aspectRatio": "4:3"} for r in calls)
    assert calls[0].json["contents"][0]["parts"][0] == {"text": "make it dusk"}
    images = result_images(server, final)
    assert len(set(images)) == 4  # each source came back as its own edited picture
    page.screenshot(path=str(ARTIFACTS / "journey_gemini_results.png"))
    assert_no_crash_text(page)


def test_seedream_json_image_run_through_a_proxy_from_the_page(page, server, fake, tmp_path):
    from tests.proxy_server import HttpProxy, Use

    key = "ark-journey-key-1"
    folder = make_photos(tmp_path / "photos", MIXED[:3])
    with HttpProxy() as proxy:
        fill_profile(page, fake.url("seedream.edit=1.images=3.fail=2", "/v1/images/generations"), key,
                     model="doubao-seedream-4-0-250828")
        page.select_option("[data-testid=api-mode]", "images")
        open_advanced(page)
        page.select_option("#api-form [name=edit_format]", "json_image")
        page.fill("#api-form [name=size]", "2K")
        page.fill("#api-form [name=response_format]", "b64_json")
        page.fill("[data-testid=proxy-url]", proxy.url)
        saved = save_settings(page)
        assert saved["api"]["edit_format"] == "json_image" and saved["api"]["proxy_url"] == proxy.url
        pick_folder(page, folder, 3)
        run_id = start_run(page, "make it blue hour")
        final = wait_all_done(page, server, run_id, 3)
        calls = image_calls(fake)
        assert proxy.uses == [Use("POST", f"127.0.0.1:{fake.port}")] * 3  # every call went through the proxy
    assert len(calls) == 3 and all(isinstance(r.json["image"], str) and r.json["image"].startswith("data:image/")
                                   for r in calls)
    assert {r.json["size"] for r in calls} == {"2K"} and all(r.headers["authorization"] == f"Bearer {key}" for r in calls)
    assert [len(task["results"]) for task in final["tasks"]] == [2, 2, 2]  # image 2 of each failed: a warning
    warning = page.locator("[data-testid=task-card] .warning").first
    warning.wait_for(timeout=WAIT_MS)
    assert warning.inner_text().startswith("image 2 failed: The request failed because the output image may contain")
    assert len(set(result_images(server, final))) == 6
    page.screenshot(path=str(ARTIFACTS / "journey_seedream_results.png"))
    assert_no_crash_text(page)


def test_exposed_on_the_network_the_page_opens_with_its_link(browser, fake, tmp_path):
    # Bound to every address, the console asks for the token it printed. The user opens
    # the printed link, works as usual, and after a restart (a new token) the page says what to do.
    data = tmp_path / "data"
    server = ServerProcess(data, host="0.0.0.0")
    # bypass_csp: Playwright's string predicates run through eval, which the page's policy forbids
    context = browser.new_context(viewport={"width": 1400, "height": 900}, locale="en-US", bypass_csp=True)
    tab = context.new_page()
    server_errors: list[str] = []
    tab.on("response", lambda r: r.status >= 500 and server_errors.append(f"{r.status} {r.url}"))
    key = "sk-live-I4j5K6"
    try:
        assert tab.goto(server.url).status == 401  # the bare address: no console, a short explanation
        assert "needs its access link" in tab.inner_text("body") and "访问链接" in tab.inner_text("body")
        tab.screenshot(path=str(ARTIFACTS / "journey_exposed_without_the_link.png"))
        tab.goto(f"{server.url}?token={server.token}")  # the link the terminal printed
        tab.wait_for_selector("body[data-ready=true]", timeout=10_000)
        assert tab.url == server.url  # the token left the address bar (and the history)
        fill_profile(tab, fake.url(f"g3_stream_dataurl.key={key}", CHAT), key)
        save_settings(tab)
        folder = make_photos(tmp_path / "photos", MIXED[:3])
        pick_folder(tab, folder, 3)
        run_id = start_run(tab)
        wait_all_done(tab, server, run_id, 3)
        tab.wait_for_function("[...document.querySelectorAll('.task-card img')].length >= 6 && "
                              "[...document.querySelectorAll('.task-card img')].every((i) => i.complete && i.naturalWidth > 0)",
                              timeout=WAIT_MS)  # images come with the cookie too
        stranger = browser.new_context(bypass_csp=True).new_page()
        assert stranger.goto(server.url + "api/settings").status == 401  # another browser, without the link
        stranger.context.close()

        port = server.port
        server.stop()
        server = ServerProcess(data, host="0.0.0.0", port=port)  # a new start: a new token
        banner = tab.locator("[data-testid=access-banner]")
        banner.wait_for(state="visible", timeout=WAIT_MS)
        assert banner.inner_text().startswith("This console needs its access link")
        tab.screenshot(path=str(ARTIFACTS / "journey_exposed_after_a_restart.png"))
        tab.goto(f"{server.url}?token={server.token}")
        tab.wait_for_selector("body[data-ready=true]", timeout=10_000)
        wait_chip(tab, "done", 3)
        assert not banner.is_visible()
        assert key not in tab.content() and all(key not in tab.input_value(f"#{i}") for i in
                                                tab.eval_on_selector_all("input[id]", "els => els.map(e => e.id)"))
        tab.screenshot(path=str(ARTIFACTS / "journey_exposed_with_the_link.png"))
        assert_no_crash_text(tab)
    finally:
        context.close()
        server.stop()
    assert server_errors == []


# --------------------------------------------------------------------------- key pools


def add_pool_key(page, key: str) -> None:
    """Unfold "More keys", click Add a key and type it into the new row."""
    pool = page.locator("[data-testid=key-pool]")
    if pool.get_attribute("open") is None:
        pool.locator("summary").click()
    page.click("[data-testid=key-pool-add]")
    page.keyboard.type(key)  # the new row's key field has the focus


def test_a_key_pool_spreads_the_run_and_parks_a_revoked_key(page, server, fake, tmp_path):
    first, revoked, second = "sk-live-first-0001-AAAA", "sk-live-revoked-0002-BBBB", "sk-live-second-0003-CCCC"
    url = fake.url(f"latency.s=0.2.key={first}~{second}", CHAT)
    fill_profile(page, url, first, concurrency=3)
    add_pool_key(page, revoked)
    add_pool_key(page, second)
    assert page.inner_text("#key-pool-count") == "· 2 more keys"
    tested = test_connection(page)
    assert "Key 1 ••••••••AAAA: OK (HTTP 200)" in tested and "Key 3 ••••••••CCCC: OK (HTTP 200)" in tested, tested
    assert "Key 2 ••••••••BBBB: failed — HTTP 401: Incorrect API key provided" in tested, tested
    saved = save_settings(page)
    assert [entry["api_key"] for entry in saved["api"]["key_pool"]] == ["••••••••BBBB", "••••••••CCCC"]
    stored = json.loads((server.data_dir / "settings.json").read_text())["api"]["key_pool"]
    assert [entry["api_key"] for entry in stored] == [revoked, second]

    page.reload()
    page.wait_for_selector("body[data-ready=true]")
    open_profile(page)
    rows = page.locator("[data-testid=pool-row] input[data-field=api_key]")
    assert rows.count() == 2 and rows.nth(0).input_value() == ""  # the page never holds a stored key
    assert rows.nth(0).get_attribute("placeholder") == "••••••••BBBB stored — type to replace"
    page.locator("[data-testid=key-pool] summary").click()
    page.locator("#api-form").screenshot(path=str(ARTIFACTS / "journey_key_pool_profile.png"))

    folder = make_photos(tmp_path / "photos", MIXED + MIXED[:2], prefix="pool")
    pick_folder(page, folder, 12)
    run_id = start_run(page)
    wait_all_done(page, server, run_id, 12)
    table = page.locator("[data-testid=keys]")
    table.wait_for(state="visible", timeout=WAIT_MS)
    page.wait_for_function("document.querySelectorAll('[data-testid=keys] tbody tr').length === 3", timeout=WAIT_MS)
    rows = [row.split("\t") for row in table.locator("tbody tr").all_inner_texts()]
    assert [row[1] for row in rows] == ["••••••••AAAA", "••••••••BBBB", "••••••••CCCC"]
    assert rows[1][5].startswith("parked: refused by the gateway: HTTP 401: Incorrect API key provided"), rows[1]
    assert rows[0][5] == rows[2][5] == "ready"
    calls = {row[1]: int(row[2]) for row in rows}
    assert calls["••••••••AAAA"] >= 4 and calls["••••••••CCCC"] >= 4 and calls["••••••••BBBB"] <= 3
    used = [call.headers.get("authorization") for call in image_calls(fake)]
    assert {f"Bearer {first}", f"Bearer {second}", f"Bearer {revoked}"} == set(used)
    page.screenshot(path=str(ARTIFACTS / "journey_key_pool.png"), full_page=True)
    assert all(key not in page.content() for key in (first, revoked, second))
    assert_no_crash_text(page)


# --------------------------------------------------------------------------- a full data disk


def test_a_full_disk_pauses_the_run_and_resume_after_freeing_space_finishes_it(browser, small_disk, fake, tmp_path):
    # The data folder's disk fills up mid-run: the page says why the run paused and how much is
    # free, Resume is refused while the disk is still full, and after freeing space Resume finishes
    # the run with no source paid for twice.
    from collections import Counter

    from testkit.fake_scenarios import call_log

    server = ServerProcess(small_disk.path / "data")
    # bypass_csp: Playwright's string predicates run through eval, which the page's policy forbids
    context = browser.new_context(viewport={"width": 1400, "height": 900}, locale="en-US", bypass_csp=True)
    tab = context.new_page()
    crashes: list[str] = []
    tab.on("response", lambda r: r.status >= 500 and r.status != 507 and crashes.append(f"{r.status} {r.url}"))
    segment = "paid.s=0.4.journey=disk"
    try:
        tab.goto(server.url)
        tab.wait_for_selector("body[data-ready=true]", timeout=10_000)
        fill_profile(tab, fake.url(segment, CHAT), "sk-disk-1234", concurrency=2)
        save_settings(tab)
        folder = make_photos(tmp_path / "photos", MIXED)
        pick_folder(tab, folder, len(MIXED))
        run_id = start_run(tab)
        wait_until(lambda: listing(server, run_id)["progress"]["done"] >= 3, what="three results")
        small_disk.fill()
        tab.wait_for_function("document.querySelector('[data-testid=cooling]')?.textContent.includes('is full')",
                              timeout=WAIT_MS)
        shown = tab.inner_text("[data-testid=cooling]")
        assert shown.startswith("Paused — the disk holding the data folder") and "free some space" in shown, shown
        # the call still in flight at the pause comes back (kept, or stored in the room the pause gave
        # back); then nothing runs
        assert idle(server, run_id)["progress"]["running"] == 0
        # the results stored before the disk filled up still show (no room for their thumbnails)
        tab.wait_for_function("[...document.querySelectorAll('.task-card[data-status=done] .results img')]"
                              ".every((i) => i.complete && i.naturalWidth > 0)", timeout=WAIT_MS)
        tab.screenshot(path=str(ARTIFACTS / "journey_disk_full_paused.png"))

        with tab.expect_response(lambda r: r.url.endswith("/resume")) as refused:
            tab.click("[data-testid=resume]")
        assert refused.value.status == 507
        tab.wait_for_function("[...document.querySelectorAll('.toast-error')].some((t) => t.textContent.includes('is full'))",
                              timeout=WAIT_MS)

        small_disk.free()
        click_run_button(tab, "resume")
        wait_all_done(tab, server, run_id, len(MIXED))
        tab.wait_for_function("document.querySelector('[data-testid=cooling]').hidden", timeout=WAIT_MS)
        paid = Counter(entry["digest"] for entry in call_log(segment))
        assert len(paid) == len(MIXED) and max(paid.values()) == 1, paid
        assert_no_crash_text(tab)
        assert crashes == []
    finally:
        tab.screenshot(path=str(ARTIFACTS / "journey_disk_full_resumed.png"))
        context.close()
        server.stop()


# --------------------------------------------------------------------------- a save killed mid-way, then saved again


def make_noise(folder: Path, names: list[str], side: int = 384) -> Path:
    """Write square PNG pictures of random pixels: slow to convert, like photos."""
    import os

    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        Image.frombytes("RGB", (side, side), os.urandom(side * side * 3)).save(folder / name, compress_level=1)
    return folder


def test_a_save_killed_by_a_crash_is_finished_by_saving_again_and_a_damaged_result_is_named(browser, fake, tmp_path):
    # The console dies (kill -9) while it writes an ai-toolkit dataset. The user starts it again,
    # saves with the same rule: the report says what it repaired, names the one result whose cached
    # file was damaged meanwhile, and the dataset is whole: every pair complete, no temp file.
    from tests.trainers import read_aitoolkit

    count, data, out = 120, tmp_path / "data", tmp_path / "datasets"
    server = ServerProcess(data)
    # bypass_csp: Playwright's string predicates run through eval, which the page's policy forbids
    context = browser.new_context(viewport={"width": 1400, "height": 900}, locale="en-US", bypass_csp=True)
    tab = context.new_page()
    try:
        tab.goto(server.url)
        tab.wait_for_selector("body[data-ready=true]", timeout=10_000)
        fill_profile(tab, fake.url("latency_jpeg.s=0.unique=1.side=512", CHAT), None, concurrency=16)
        save_settings(tab)
        folder = make_noise(tmp_path / "photos", [f"p{n:03d}.png" for n in range(1, count + 1)])
        pick_folder(tab, folder, count)
        run_id = start_run(tab, "turn night into day")
        tasks = wait_all_done(tab, server, run_id, count, timeout=120)["tasks"]

        def fill_rule() -> None:
            form = tab.locator("#save-form")
            form.locator("[name=output_dir]").fill(str(out))
            form.locator("[name=layout]").select_option("aitoolkit_edit")
            form.locator("[name=name]").fill("day")
            form.locator("[name=format]").select_option("webp")  # slow to encode: the kill lands mid-save
            form.locator("[name=only_selected]").uncheck()

        tab.click("#open-save")
        fill_rule()
        tab.locator("#save-form [type=submit]").click()
        tab.wait_for_function("/Writing [1-9]/.test(document.querySelector('[data-testid=save-progress]')?.textContent)",
                              timeout=WAIT_MS)
        wait_until(lambda: (out / "manifest.jsonl").exists(), what="the first items listed")
        port = server.port
        server.kill()
        listed = (out / "manifest.jsonl").read_text("utf-8").splitlines()
        assert 0 < len(listed) < count
        last = next(t for t in tasks if t["source_name"] == f"p{count:03d}.png")["results"][0]
        cached = data / "cache" / last["sha256"][:2] / f"{last['sha256']}.jpg"
        cached.write_bytes(cached.read_bytes()[:1000])  # a disk fault while the console was down

        server = ServerProcess(data, port=port)
        tab.goto(server.url)  # the user reloads the page: it opens the same run
        tab.wait_for_selector("body[data-ready=true]", timeout=10_000)
        tab.locator("[data-testid=task-card]").first.wait_for(timeout=WAIT_MS)
        tab.click("#open-save")
        fill_rule()
        save_now(tab, f"{count - len(listed) - 1} saved")
        report = tab.locator("[data-testid=save-report]")
        assert report.locator("[data-testid=save-repaired]").inner_text().startswith(
            "Repaired first what an interrupted save left")
        damaged = report.locator("[data-reason=damaged]")
        assert damaged.locator("li b").all_inner_texts() == [f"p{count:03d}.png"]
        assert "retry the task" in damaged.inner_text()
        report.locator("[data-testid=report-skips] summary").click()  # the expected skips come folded
        assert f"({len(listed)})" in report.locator("[data-reason=saved_before] h4").inner_text()
        dataset = read_aitoolkit(out / "day_target", [out / "day_control"])
        assert dataset.problems == [] and len(dataset.samples) == count - 1
        assert [p for p in out.rglob(".*") if p.is_file()] == []  # no temp file, no journal
        assert len((out / "manifest.jsonl").read_text("utf-8").splitlines()) == count - 1
        assert_no_crash_text(tab)
        report.screenshot(path=str(ARTIFACTS / "journey_save_after_crash_report.png"))
    finally:
        context.close()
        server.stop()


def test_credentials_typed_in_a_header_and_the_url_stay_masked_and_reach_the_gateway(page, server, fake, tmp_path):
    token = "sk-journey-header-Q7xZ42aa"  # the gateway accepts only this Bearer token
    query_key = "sk-journey-query-W3vY19bb"
    url = fake.url(f"g3_stream_dataurl.key={token}", CHAT) + f"?key={query_key}"
    shown_url = url.replace(query_key, MASK + query_key[-4:])
    folder = make_photos(tmp_path / "photos", MIXED[:3])
    fill_profile(page, url, None)
    open_advanced(page)
    page.fill("[data-testid=extra-headers]", json.dumps({"Authorization": f"Bearer {token}"}))
    saved = save_settings(page)
    assert saved["api"]["extra_headers"] == {"Authorization": f"Bearer {MASK}{token[-4:]}"}
    assert saved["api"]["api_url"] == shown_url
    page.reload()
    page.wait_for_selector("body[data-ready=true]", timeout=10_000)
    open_advanced(page)
    assert page.input_value("[data-testid=api-url]") == shown_url
    assert json.loads(page.input_value("[data-testid=extra-headers]")) == {"Authorization": f"Bearer {MASK}{token[-4:]}"}
    assert token not in page.content() and query_key not in page.content()
    save_settings(page)  # saving the form as it shows keeps what the masks stand for
    stored = json.loads((server.data_dir / "settings.json").read_text())["api"]
    assert stored["extra_headers"] == {"Authorization": f"Bearer {token}"} and stored["api_url"] == url
    pick_folder(page, folder, 3)
    wait_all_done(page, server, start_run(page, "keep the secrets"), 3)
    calls = image_calls(fake)
    assert len(calls) == 3
    assert all(r.headers["authorization"] == f"Bearer {token}" and r.query["key"] == query_key for r in calls)
    assert token not in page.content() and query_key not in page.content()
    assert_no_crash_text(page)


# --------------------------------------------------------------------------- a scan cut short


def test_a_scan_past_its_cap_says_so_and_a_smaller_folder_runs(browser, fake, tmp_path):
    # A folder bigger than SCAN_MAX_ENTRIES (here 20 files and folders): the preview says the scan
    # stopped and what to do, Start is refused with the same advice, a smaller folder runs.
    import os

    archive = tmp_path / "archive"
    for year in ("2024", "2025"):
        make_photos(archive / year, [(24, 18)] * 12)
    server = ServerProcess(tmp_path / "data", env={**os.environ, "SCAN_MAX_ENTRIES": "20"})
    # bypass_csp: Playwright's string predicates run through eval, which the page's policy forbids
    context = browser.new_context(viewport={"width": 1400, "height": 900}, locale="en-US", bypass_csp=True)
    tab = context.new_page()
    crashes: list[str] = []
    tab.on("response", lambda r: r.status >= 500 and crashes.append(f"{r.status} {r.url}"))
    try:
        tab.goto(server.url)
        tab.wait_for_selector("body[data-ready=true]", timeout=10_000)
        fill_profile(tab, fake.url("g3_stream_dataurl", CHAT), "sk-scan-cap-1234")
        tab.fill("[data-testid=path-input]", str(archive))
        tab.check("#run-form [name=recursive]")
        tab.click("#scan")
        text = output_text(tab, "scan-output", "The scan stopped after 20 files and folders (SCAN_MAX_ENTRIES)")
        assert text.startswith("18 images found\n⚠ The scan stopped") and "pick a smaller one" in text, text
        tab.fill("[data-testid=prompt-input]", "make the sky purple")
        refused = click_start(tab, 400)
        assert "a run takes every image" in refused["error"] and image_calls(fake) == []
        tab.wait_for_function("[...document.querySelectorAll('.toast-error')]"
                              ".some((t) => t.textContent.includes('a run takes every image'))", timeout=WAIT_MS)
        tab.screenshot(path=str(ARTIFACTS / "journey_scan_cut_short.png"))
        pick_folder(tab, archive / "2024", 12)
        assert "stopped" not in tab.inner_text("[data-testid=scan-output]")
        wait_all_done(tab, server, click_start(tab)["run_id"], 12)
        assert len(image_calls(fake)) == 12
        assert_no_crash_text(tab)
        assert crashes == []
    finally:
        context.close()
        server.stop()


# --------------------------------------------------------------------------- pasted paths


def test_a_path_pasted_from_a_file_manager_in_quotes_or_as_a_file_url_previews(page, server, fake, tmp_path):
    # "Copy path" in a file manager gives '/home/me/my photos' (quotes) or file:///home/me/my%20photos;
    # both are what the person meant. A relative path is refused with the forms that work.
    folder = make_photos(tmp_path / "my photos", MIXED[:3])
    pick_folder(page, folder, 3)  # plain
    for typed in (f"'{folder}'", "file://" + str(folder).replace(" ", "%20")):
        page.fill("[data-testid=path-input]", "")
        page.fill("[data-testid=path-input]", typed)
        with page.expect_response(lambda r: r.url.endswith("/api/scan")) as answer:
            page.click("#scan")
        assert answer.value.status == 200 and answer.value.json()["count"] == 3, typed
    page.fill("[data-testid=path-input]", "my photos")
    with page.expect_response(lambda r: r.url.endswith("/api/scan")) as answer:
        page.click("#scan")
    assert answer.value.status == 400
    page.wait_for_function("document.querySelector('#scan-output')?.textContent.includes('in quotes')", timeout=WAIT_MS)
    shown = page.inner_text("#scan-output")
    assert "must be an absolute path: my photos" in shown and "file:///home/me/photos" in shown, shown
    assert_no_crash_text(page)


# --------------------------------------------------------------------------- an address per run and view


def open_history_run(page, run_id: str) -> None:
    """Click a run in the runs list and wait until the page shows it (its id in the address)."""
    page.click(f"#history [data-run-id='{run_id}'] button.link")
    page.wait_for_function("(id) => new URLSearchParams(location.search).get('run') === id", arg=run_id)


def address(page) -> dict[str, str]:
    """The page's address as the query's fields."""
    return dict(page.evaluate("[...new URLSearchParams(location.search)]"))


def wait_view(page, run_id: str, status: str, count: int) -> None:
    """Wait until the page shows the run with that status chip active and `count` cards."""
    page.wait_for_function(
        """([id, status, count]) => document.querySelector(`#history [data-run-id="${id}"]`)?.classList.contains('is-current')
             && document.querySelector(`#counts [data-status="${status}"]`)?.classList.contains('is-active')
             && document.querySelectorAll('[data-testid=task-card]').length === count""",
        arg=[run_id, status, count], timeout=WAIT_MS)


def test_back_forward_reload_and_a_shared_link_keep_the_run_and_its_filter(page, server, fake, tmp_path):
    # picky refuses the first call of every third source: run A ends with 4 done and 2 failed.
    fill_profile(page, fake.url("picky", CHAT), "sk-view-1", concurrency=1)
    save_settings(page)
    pick_folder(page, make_photos(tmp_path / "a", MIXED[:6]), 6)
    run_a = start_run(page, "run A")
    wait_settled(page, server, run_a)
    pick_folder(page, make_photos(tmp_path / "b", MIXED[:2], prefix="bee"), 2)
    run_b = start_run(page, "run B")
    page.wait_for_function("(id) => location.search === `?run=${id}`", arg=run_b)  # the new run, in the address
    wait_settled(page, server, run_b)
    items = page.locator("#history [data-run-id]")
    assert sorted(items.evaluate_all("els => els.map(e => e.dataset.runId)")) == sorted([run_a, run_b])
    open_history_run(page, run_a)
    page.click("#counts [data-status=done]")
    wait_view(page, run_a, "done", 4)
    assert address(page) == {"run": run_a, "status": "done"}
    page.fill("#filter-q", "photo0")  # typing refines this view; it is no new step for Back
    page.fill("#filter-q", "")
    open_history_run(page, run_b)
    wait_view(page, run_b, "done", 2)  # the filter stays on while moving between runs
    page.click("#counts [data-status='']")
    wait_view(page, run_b, "", 2)
    page.go_back()  # B with Done, then A with Done
    wait_view(page, run_b, "done", 2)
    page.go_back()
    wait_view(page, run_a, "done", 4)
    assert address(page) == {"run": run_a, "status": "done"} and page.input_value("#filter-q") == ""
    assert page.url.startswith(server.url.split("?")[0])  # Back stayed in the console
    page.go_forward()
    page.go_forward()
    wait_view(page, run_b, "", 2)
    page.reload()
    page.wait_for_selector("body[data-ready=true]")
    wait_view(page, run_b, "", 2)
    shared = page.url.replace(f"run={run_b}", f"run={run_a}&status=failed&q=photo03")
    other = page.context.browser.new_context(viewport={"width": 1366, "height": 768}, bypass_csp=True)
    try:  # another browser profile: nothing remembered, only the link
        tab = other.new_page()
        tab.goto(server.url)  # the access cookie, as the person who got the link has it
        tab.goto(shared)
        tab.wait_for_selector("body[data-ready=true]")
        wait_view(tab, run_a, "failed", 1)
        assert tab.input_value("#filter-q") == "photo03" and tab.locator(".task-card .name").inner_text() == "photo03.png"
        tab.screenshot(path=str(ARTIFACTS / "journey_shared_link_1366.png"))
    finally:
        other.close()


def test_the_run_form_keeps_its_draft_and_each_mode_its_prompt(page, server, fake, tmp_path):
    folder = make_photos(tmp_path / "photos", MIXED[:2])
    choose_mode(page, "edit")
    page.fill("[data-testid=path-input]", str(folder))
    page.check("#run-form [name=recursive]")
    page.select_option("[data-testid=sidecar-mode]", "append")
    page.fill("[data-testid=reference-dirs]", str(tmp_path / "refs"))
    page.fill("[data-testid=prompt-input]", "make the sky purple")
    choose_mode(page, "generate")
    assert page.input_value("[data-testid=prompt-input]") == ""  # the Edit prompt does not leak into Generate
    page.fill("[data-testid=prompt-input]", "a {animal} at dawn")
    page.wait_for_selector("#variables .var-name")
    choose_mode(page, "edit")
    assert page.input_value("[data-testid=prompt-input]") == "make the sky purple"
    choose_mode(page, "generate")
    assert page.input_value("[data-testid=prompt-input]") == "a {animal} at dawn"
    page.reload()
    page.wait_for_selector("body[data-ready=true]")
    assert page.evaluate("document.querySelector('#run-form').dataset.mode") == "generate"
    assert page.input_value("[data-testid=prompt-input]") == "a {animal} at dawn"
    assert page.locator("#variables .var-name").count() >= 1  # the variables follow the restored prompt
    choose_mode(page, "edit")
    assert page.input_value("[data-testid=prompt-input]") == "make the sky purple"
    assert page.input_value("[data-testid=path-input]") == str(folder)
    assert page.is_checked("#run-form [name=recursive]")
    assert page.input_value("[data-testid=sidecar-mode]") == "append"
    assert page.input_value("[data-testid=reference-dirs]") == str(tmp_path / "refs")


def test_the_first_start_guide_stays_after_step_1_until_the_first_run(page, server, fake, tmp_path):
    guide = page.locator("[data-testid=guided-start]")
    assert guide.is_visible()
    fill_profile(page, fake.url("g3_stream_dataurl", CHAT), "sk-guide-1")
    save_settings(page)  # step 1 done: the guide must now lead to steps 2 and 3
    page.wait_for_selector("[data-testid=guided-start] [data-step='2'].is-current")
    assert guide.is_visible() and "is-done" in page.locator("[data-step='1']").get_attribute("class")
    page.fill("[data-testid=path-input]", str(make_photos(tmp_path / "photos", MIXED[:2])))
    page.wait_for_selector("[data-testid=guided-start] [data-step='3'].is-current")
    page.reload()  # still a first start: no run yet
    page.wait_for_selector("body[data-ready=true]")
    page.wait_for_selector("[data-testid=guided-start] [data-step='3'].is-current")
    run_id = start_run(page)
    guide.wait_for(state="hidden")
    wait_all_done(page, server, run_id, 2)
    page.reload()
    page.wait_for_selector("body[data-ready=true]")
    assert not guide.is_visible()

def in_view(page, selector: str) -> bool:
    """Whether the element is wholly inside the window and is what a click there would reach."""
    return page.evaluate("""(sel) => { const el = document.querySelector(sel); const r = el.getBoundingClientRect();
        if (r.top < 0 || r.left < 0 || r.bottom > innerHeight || r.right > innerWidth || !r.height) return false;
        const hit = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);
        return el === hit || el.contains(hit); }""", selector)


def test_on_a_laptop_screen_the_runs_start_run_profile_and_save_now_are_in_reach(page, server, fake, tmp_path):
    fill_profile(page, fake.url("g3_stream_dataurl", CHAT), "sk-reach-1")
    save_settings(page)
    for number in range(5):
        pick_folder(page, make_photos(tmp_path / f"f{number}", MIXED[:2], prefix=f"p{number}_"), 2)
        wait_all_done(page, server, start_run(page, f"run {number}"), 2)
    for width, height in ((1366, 768), (1920, 1080)):
        page.set_viewport_size({"width": width, "height": height})
        page.reload()
        page.wait_for_selector("body[data-ready=true]")
        runs = page.locator("#runs-panel").bounding_box()
        assert runs["y"] < 100, runs  # the runs list tops the sidebar
        for selector in ("#history .history-item.is-current", "[data-testid=start-run]", "#api-panel > summary"):
            assert in_view(page, selector), (width, selector)
        page.screenshot(path=str(ARTIFACTS / f"journey_layout_{width}.png"))
        page.click("#open-save")
        assert in_view(page, "#save-submit"), width
        page.screenshot(path=str(ARTIFACTS / f"journey_layout_save_{width}.png"))
        page.click("#save-close")
    page.set_viewport_size({"width": 1366, "height": 768})
    page.click("#api-panel > summary")  # opened from its place at the bottom, the profile comes into view
    page.wait_for_function("document.querySelector('[data-testid=api-url]').getBoundingClientRect().bottom < innerHeight")
    assert in_view(page, "[data-testid=api-url]")


# --------------------------------------------------------------------------- handing over files from the browser


DROP_FILES = """async ({names, data}) => {
  const bytes = Uint8Array.from(data);
  const transfer = new DataTransfer();
  for (const name of names) transfer.items.add(new File([bytes], name, {type: "image/png"}));
  const zone = document.querySelector("[data-testid=drop-zone]");
  zone.dispatchEvent(new DragEvent("dragenter", {bubbles: true, cancelable: true, dataTransfer: transfer}));
  zone.dispatchEvent(new DragEvent("dragover", {bubbles: true, cancelable: true, dataTransfer: transfer}));
  const highlighted = zone.classList.contains("is-dropping");
  const drop = new DragEvent("drop", {bubbles: true, cancelable: true, dataTransfer: transfer});
  zone.querySelector("[name=prompt]").dispatchEvent(drop);  // anywhere on the form
  return {highlighted, handled: drop.defaultPrevented};
}"""


def wait_uploaded(page, count: int, before: str) -> str:
    """Wait until an upload filled the folder field (a new value) and its preview counted `count` images."""
    page.wait_for_function("(before) => document.querySelector('[data-testid=path-input]').value !== before",
                           arg=before, timeout=WAIT_MS)
    page.wait_for_function("(n) => document.querySelector('#scan-output')?.textContent.includes(`${n} image`)",
                           arg=count, timeout=WAIT_MS)
    return page.input_value("[data-testid=path-input]")


def test_hand_over_a_folder_from_the_browser(page, server, fake, tmp_path):
    folder = make_photos(tmp_path / "holiday", MIXED[:3])
    make_photos(folder / "more", MIXED[3:5], prefix="extra")
    (folder / "notes.pdf").write_bytes(b"%PDF-1.4")
    uploads = server.data_dir / "uploads"
    # The folder picker: the whole tree, sub-folder included; the folder field points at the copy.
    page.set_input_files("[data-testid=upload-folder]", folder)
    copy = wait_uploaded(page, 5, "")
    assert copy.startswith(str(uploads.resolve())) and copy.endswith("/holiday"), copy
    assert page.is_checked("#run-form [name=recursive]")
    progress = page.locator("[data-testid=upload-progress]").inner_text()
    assert "Uploaded 5 images" in progress and "notes.pdf: not an image" in progress, progress
    assert sorted(p.name for p in Path(copy).rglob("*.*")) == sorted(p.name for p in folder.rglob("*.*") if p.suffix != ".pdf")
    fill_profile(page, fake.url("g3_stream_dataurl", CHAT), None)
    run_id = start_run(page)
    wait_all_done(page, server, run_id, 5)
    # A drop anywhere on the form (a synthetic one: the test cannot drag from a file manager).
    png = (folder / "photo01.png").read_bytes()
    dropped = page.evaluate(DROP_FILES, {"names": ["a.png", "b.png"], "data": list(png)})
    assert dropped == {"highlighted": True, "handled": True}
    second = wait_uploaded(page, 2, copy)
    assert Path(second).parent == uploads.resolve() and not page.is_checked("#run-form [name=recursive]")
    assert page.locator("[data-testid=drop-zone]").get_attribute("class") in (None, "")
    # The file picker; then Start run works on that upload too.
    page.set_input_files("[data-testid=upload-files]", [folder / "photo01.png", folder / "photo03.png"])
    third = wait_uploaded(page, 2, second)
    second_run = start_run(page, "make it green")
    wait_all_done(page, server, second_run, 2)
    assert server.get(f"/api/runs/{second_run}").json()["input_path"] == third
    page.screenshot(path=str(ARTIFACTS / "journey_upload_form.png"))
    # The copy lives as long as a run uses it.
    assert Path(copy).is_dir()
    assert page.request.delete(f"{server.url}api/runs/{run_id}").status == 200
    wait_until(lambda: not Path(copy).exists(), what="the uploaded folder removed with its run")
    assert Path(third).is_dir()
    assert toasts(page) == []

# --------------------------------------------------------------------------- bulk selection


def marks(server: ServerProcess, run_id: str) -> list[list[bool]]:
    """Each task's results' selected marks, in source order (read through the API)."""
    return [[r["selected"] for r in task["results"]] for task in listing(server, run_id)["tasks"]]


def wait_count(page, count: int, total: int) -> None:
    """Wait until the always-visible count says `count of total selected`."""
    page.wait_for_function(
        "([n, total]) => document.querySelector('[data-testid=selected-count]').textContent === `${n} of ${total} selected`",
        arg=[count, total], timeout=WAIT_MS)


def space_selects_and_moves_on(page) -> None:
    """Press Space in the viewer: the result shown is selected (stored) and the next task shows."""
    before = page.inner_text(".viewer-title")
    with page.expect_response(lambda r: "/api/results/" in r.url and r.request.method == "PATCH") as answer:
        page.keyboard.press(" ")
    assert answer.value.status == 200, answer.value.text()
    assert page.inner_text(".viewer-title") != before


def chip(page, status: str) -> None:
    page.click(f"#counts [data-status='{status}']")


def test_bulk_selection_with_the_mouse_and_the_keyboard(page, server, fake, tmp_path):
    folder = make_photos(tmp_path / "photos", MIXED[:6])
    fill_profile(page, fake.url("g3_stream_dataurl", CHAT), None)
    pick_folder(page, folder, 6)
    run_id = start_run(page)
    ids = [task["id"] for task in wait_all_done(page, server, run_id, 6)["tasks"]]
    card = lambda number: page.locator(f"[data-testid=task-card][data-task-id='{ids[number]}']")  # noqa: E731
    wait_count(page, 0, 12)
    # Two tasks fail a retry that keeps their results: the run mixes Done and Failed, two results each.
    fill_profile(page, fake.url("err_401_g16", CHAT), None)
    for number in (1, 4):
        card(number).locator("[data-action=retry-keep]").click()
    page.wait_for_function("document.querySelectorAll('[data-testid=task-card][data-status=failed]').length === 2",
                           timeout=WAIT_MS)
    chip(page, "failed")
    page.click("[data-testid=select-all]")  # what the filter shows: the two failed tasks
    wait_count(page, 4, 12)
    assert marks(server, run_id) == [[False] * 2, [True] * 2, [False] * 2, [False] * 2, [True] * 2, [False] * 2]
    chip(page, "done")
    page.keyboard.press("v")  # invert the four done tasks
    wait_count(page, 12, 12)
    chip(page, "")
    page.click("[data-testid=select-first]")
    wait_count(page, 6, 12)
    assert marks(server, run_id) == [[True, False]] * 6
    page.keyboard.press("u")
    wait_count(page, 0, 12)
    page.fill("#filter-q", "photo0")  # the search box counts too: invert what it shows
    page.click("[data-testid=select-invert]")
    wait_count(page, 12, 12)
    page.keyboard.press("Escape")
    page.click("[data-testid=select-none]")
    wait_count(page, 0, 12)
    page.fill("#filter-q", "")
    # A range: click the second card, Shift-click the fifth; Ctrl-click one result off again.
    card(1).locator(".name").click()
    card(4).locator(".name").click(modifiers=["Shift"])
    wait_count(page, 8, 12)
    assert marks(server, run_id) == [[False] * 2] + [[True] * 2] * 4 + [[False] * 2]
    card(2).locator("[data-testid=result-image]").nth(1).click(modifiers=["Control"])
    wait_count(page, 7, 12)
    assert page.locator("[data-testid=viewer]").is_hidden()  # a modifier click does not open the viewer
    assert marks(server, run_id)[2] == [True, False]
    # The viewer: Space selects and moves on; the selection shows on the image.
    card(0).locator("[data-testid=result-image]").first.click()
    page.locator("[data-testid=viewer]").wait_for(state="visible")
    assert page.locator("[data-testid=viewer-selected]").is_hidden()
    page.keyboard.press(" ")
    page.wait_for_function("document.querySelector('.viewer-title').textContent.startsWith('2.')")
    wait_count(page, 8, 12)
    page.locator("[data-testid=viewer-selected]").wait_for(state="visible")  # the second task's first result
    page.screenshot(path=str(ARTIFACTS / "journey_bulk_selection_viewer.png"))
    page.uncheck("[data-testid=viewer-advance]")  # stay: Space only toggles
    page.keyboard.press(" ")
    wait_count(page, 7, 12)
    assert page.locator(".viewer-title").inner_text().startswith("2.")
    assert page.locator("[data-testid=viewer-selected]").is_hidden()
    assert "F first of each" in page.locator(".viewer-keys").inner_text()
    page.keyboard.press("Escape")
    assert marks(server, run_id) == [[True, False], [False, True], [True, False], [True] * 2, [True] * 2, [False] * 2]
    assert server.get(f"/api/runs/{run_id}").json()["selected"] == 7


def test_a_fixed_problem_takes_its_error_away_and_retry_failed_shows_the_retried_tasks(page, server, fake, tmp_path):
    folder = make_photos(tmp_path / "photos", MIXED[:3])
    fill_profile(page, fake.url("err_401_g16", CHAT), None)
    page.fill("[data-testid=path-input]", str(tmp_path / "no such folder"))
    page.fill("[data-testid=prompt-input]", "make the sky purple")
    page.click("[data-testid=start-run]")
    page.wait_for_function("document.querySelectorAll('.toast-error').length === 1", timeout=WAIT_MS)
    # The user fixes the folder: the start goes through, and the error about the folder goes away.
    page.fill("[data-testid=path-input]", str(folder))
    run_id = start_run(page)
    page.wait_for_function("document.querySelectorAll('.toast-error').length === 0", timeout=WAIT_MS)
    final = wait_settled(page, server, run_id)
    assert final["progress"]["failed"] == 3, final["progress"]
    page.click("#counts [data-status=failed]")
    page.wait_for_function("document.querySelectorAll('[data-testid=task-card]').length === 3", timeout=WAIT_MS)
    fill_profile(page, fake.url("g3_stream_dataurl", CHAT), None)
    click_run_button(page, "retry-failed")
    # The retried tasks stay in sight (the Failed filter would show an empty grid while they run).
    page.wait_for_function("document.querySelector('#counts .chip.is-active')?.dataset.status === ''",
                           timeout=WAIT_MS)  # the page acts on the answer after it arrives
    wait_all_done(page, server, run_id, 3)
    page.wait_for_function("document.querySelectorAll('[data-testid=task-card][data-status=done]').length === 3",
                           timeout=WAIT_MS)
    assert page.locator("#empty").is_hidden()
    page.go_back()  # Back returns to the Failed view the user chose
    page.wait_for_function("document.querySelector('#counts .chip.is-active')?.dataset.status === 'failed'",
                           timeout=WAIT_MS)


def test_a_save_writes_every_pair_with_the_template_into_the_runs_folder_and_asks_before_appending(
        page, server, fake, tmp_path):
    """Mixed-aspect pairs saved for ai-toolkit: every pair written (conformed), named by the template, into a
    folder named after the run; a second run's save into it asks first; the report ends with the YAML."""
    key = "sk-live-Dataset20"
    url = fake.url(f"latency.s=0.key={key}", CHAT)  # one 512x512 result per task: only squares share its aspect
    first_folder = make_photos(tmp_path / "photos", [(96, 72), (64, 64), (48, 64), (160, 90)])
    datasets = tmp_path / "datasets"
    fill_profile(page, url, key)
    save_settings(page)
    pick_folder(page, first_folder, 4)
    first = start_run(page, "turn it into a watercolour")
    wait_all_done(page, server, first, 4)
    check_every_result(page, 4)
    page.click("#open-save")
    form = page.locator("#save-form")
    folder = form.locator("[name=output_dir]")
    page.wait_for_function("(id) => document.querySelector('#save-form [name=output_dir]').value.endsWith(id)",
                           arg=first, timeout=WAIT_MS)
    assert Path(folder.input_value()).name == f"photos-{first}"  # a new folder named after the run
    out = datasets / f"photos-{first}"
    folder.fill(str(out))  # the person keeps the name and puts their datasets under one folder
    # A field the layout ignores is disabled and says why.
    form.locator("[name=layout]").select_option("flat")
    assert form.locator("[name=name]").is_disabled() and "Not used" in page.inner_text("[data-testid=ignored-name]")
    form.locator("[name=layout]").select_option("aitoolkit_edit")
    assert form.locator("[name=name]").is_enabled() and page.locator("[data-testid=ignored-name]").count() == 0
    form.locator("[name=template]").fill("wc_{global_index:04d}")
    save_now(page, "4 saved")
    stems = [f"wc_{n:04d}" for n in range(1, 5)]
    assert sorted(p.name for p in (out / "dataset_target").glob("*.png")) == [f"{s}.png" for s in stems]
    assert sorted(p.name for p in (out / "dataset_target").glob("*.txt")) == [f"{s}.txt" for s in stems]
    assert sorted(p.name for p in (out / "dataset_control").iterdir()) == [f"{s}.png" for s in stems]
    sizes = []
    for stem in stems:  # every control of another aspect was conformed to its target: none refused
        with Image.open(out / "dataset_control" / f"{stem}.png") as control:
            sizes.append(control.size)
    assert sorted(sizes) == [(64, 64), (512, 512), (512, 512), (512, 512)]  # the square source is kept as it is
    report = page.locator("[data-testid=save-report]")
    assert "Refused" not in report.inner_text()
    written = report.locator("[data-testid=report-written]")
    assert str(out) in written.locator("h4").inner_text()
    snippet = report.locator("[data-testid=trainer-snippet]")
    text = snippet.locator("pre").inner_text()
    assert f'folder_path: "{out / "dataset_target"}"' in text and f'control_path: "{out / "dataset_control"}"' in text
    assert report.locator("> *").last.get_attribute("data-testid") == "trainer-snippet"  # it ends the report
    snippet.locator("[data-testid=copy-snippet]").click()
    page.wait_for_function("[...document.querySelectorAll('.toast')].some((t) => t.textContent.includes('Copied'))",
                           timeout=WAIT_MS)
    report.screenshot(path=str(ARTIFACTS / "journey_save_template_conformed_snippet.png"))
    page.click("#save-close")

    # A second run: its folder defaults to a new one named after it, next to the first.
    second_folder = make_photos(tmp_path / "more", [(64, 48), (50, 50)], prefix="more")
    pick_folder(page, second_folder, 2)
    second = start_run(page, "turn it into an oil painting")
    wait_all_done(page, server, second, 2)
    check_every_result(page, 2)
    page.click("#open-save")
    page.wait_for_function("(id) => document.querySelector('#save-form [name=output_dir]').value.endsWith(id)",
                           arg=second, timeout=WAIT_MS)
    assert folder.input_value() == str(datasets / f"more-{second}")
    folder.fill(str(out))  # into the first run's dataset: the console asks
    form.locator("[name=template]").fill("oil_{global_index:04d}")
    before = sorted(p.name for p in (out / "dataset_target").iterdir())
    page.watch.confirm_answer = False
    page.locator("#save-form [type=submit]").click()
    said_no = page.locator(".toast", has_text="Nothing saved")
    said_no.wait_for(timeout=WAIT_MS)
    assert page.locator(".toast-error").count() == 0  # the person's answer, not an error
    said_no.click()  # out of the way of Save now
    assert len(page.watch.dialogs) == 1 and first in page.watch.dialogs[0] and "watercolour" in page.watch.dialogs[0]
    assert sorted(p.name for p in (out / "dataset_target").iterdir()) == before  # said no: nothing written
    page.watch.confirm_answer = True
    save_now(page, "2 saved")
    assert len(page.watch.dialogs) == 2
    assert sorted(p.name for p in (out / "dataset_target").glob("*.png")) == [
        "oil_0001.png", "oil_0002.png", *[f"{s}.png" for s in stems]]
    runs = {json.loads(line)["run_id"] for line in (out / "manifest.jsonl").read_text("utf-8").splitlines()}
    assert runs == {first, second}
    report.screenshot(path=str(ARTIFACTS / "journey_save_appended_report.png"))


# --------------------------------------------------------------------------- review flags

FLAGSET = Path(__file__).resolve().parent.parent / "bench" / "flagset" / "photos"
# review_mix answers each source by this plan, in the order the sources arrive (concurrency 1: task order).
# One stock picture answers both duplicates (camera.jpg, grass.jpg), resized to each source.
REVIEW_PLAN = ("edit", "blank", "dup", "other", "same", "squeeze", "edit", "dup")
# The flag each kind must raise (a result may carry more: a duplicate is also unrelated to its source).
EXPECTED_FLAG = [None, "blank", "near_duplicate", "unrelated", "unchanged", "off_size", None, "near_duplicate"]


def flags_of(server: ServerProcess, run_id: str) -> list[list[str]] | None:
    """Each task's flags (of its only result), in task order; None while a result waits for its look."""
    tasks = listing(server, run_id)["tasks"]
    if not all(r["flags_checked"] for task in tasks for r in task["results"]):
        return None
    return [[flag for r in task["results"] for flag in r["flags"]] for task in tasks]


def wait_names(page, names: list[str]) -> None:
    """Wait until the cards show these names, in reading order (the grid places cards with transforms)."""
    page.wait_for_function("""(names) => JSON.stringify([...document.querySelectorAll('[data-testid=task-card]')]
        .map((card) => [card.getBoundingClientRect(), card.querySelector('.name').textContent])
        .sort(([a], [b]) => a.top - b.top || a.left - b.left).map(([, name]) => name)) === JSON.stringify(names)""",
                           arg=names, timeout=WAIT_MS)


def chips_fit(page) -> list[str]:
    """The flag chips on screen whose label is cut or that stick out of their result's tile."""
    return page.evaluate("""() => [...document.querySelectorAll('.result .flag')].filter((chip) => {
        const box = chip.getBoundingClientRect(), tile = chip.closest('.result').getBoundingClientRect();
        return chip.scrollWidth > chip.clientWidth || box.left < tile.left || box.right > tile.right
            || box.top < tile.top || box.bottom > tile.bottom || box.height < 12;
    }).map((chip) => chip.textContent)""")


def test_review_flags_filter_sort_select_and_view(page, server, fake, tmp_path):
    page.set_viewport_size({"width": 1366, "height": 768})
    folder = tmp_path / "photos"
    folder.mkdir()
    photos = sorted(FLAGSET.glob("*.jpg"))[:len(REVIEW_PLAN)]
    for photo in photos:
        (folder / photo.name).write_bytes(photo.read_bytes())
    names = [photo.name for photo in photos]
    fill_profile(page, fake.url("review_mix.plan=" + "~".join(REVIEW_PLAN), CHAT), None, concurrency=1)
    pick_folder(page, folder, len(names))
    run_id = start_run(page, "make it warmer and add a red ball")
    wait_all_done(page, server, run_id, len(names))
    found = wait_until(lambda: flags_of(server, run_id), what="every result looked at")
    for name, flags, expected in zip(names, found, EXPECTED_FLAG):
        assert expected in flags if expected else flags == [], (name, flags)
    flagged = [name for name, flags in zip(names, found) if flags]
    page.wait_for_function("(n) => document.querySelectorAll('.result .flag').length === n",
                           arg=sum(map(len, found)), timeout=WAIT_MS)
    assert page.locator("[data-testid=flags-checking]").is_hidden()
    tasks = listing(server, run_id)["tasks"]
    reason = lambda number, flag: tasks[number]["results"][0]["flag_reasons"][flag]  # noqa: E731

    # The mouse: pick Blank in the flag filter; only the blank task shows, its chip says why.
    filter_box = page.locator("[data-testid=flag-filter]")
    assert filter_box.locator("option[value=blank]").inner_text() == "Blank (1)"
    assert filter_box.locator("option[value=any]").inner_text() == f"Flagged ({len(flagged)})"
    filter_box.select_option("blank")
    wait_names(page, [names[1]])
    blank_chip = page.locator("[data-testid=task-card] .result [data-flag=blank]")
    assert blank_chip.inner_text() == "Blank" and blank_chip.get_attribute("title") == reason(1, "blank")
    # The keyboard: F in the focused filter picks Flagged.
    filter_box.focus()
    page.keyboard.press("f")
    wait_names(page, flagged)
    assert filter_box.input_value() == "any"
    page.screenshot(path=str(ARTIFACTS / "journey_review_flags_flagged_1366.png"))
    for size in ("small", "large", "medium"):  # every label whole and inside its result, at every card size
        page.select_option("[data-testid=card-size]", size)
        page.wait_for_function("(size) => document.querySelector('#grid').dataset.size === size", arg=size)
        assert chips_fit(page) == [], size
        if size == "small":
            page.screenshot(path=str(ARTIFACTS / "journey_review_flags_small_1366.png"))

    # Select all acts on what the filter shows: the flagged results, nothing else.
    page.click("[data-testid=select-all]")
    wait_count(page, len(flagged), len(names))
    assert [r["selected"] for task in listing(server, run_id)["tasks"] for r in task["results"]] == \
        [bool(flags) for flags in found]

    # The viewer shows the flags of the result with their reasons; G goes to the next flagged task.
    card = page.locator(f"[data-testid=task-card]:has(.name:text-is('{names[2]}'))")
    card.locator("[data-testid=result-image]").click()
    viewer_flags = page.locator("[data-testid=viewer-flags]")
    viewer_flags.wait_for(state="visible")
    assert viewer_flags.locator("[data-flag]").evaluate_all("els => els.map((e) => e.dataset.flag)") == found[2]
    assert reason(2, "near_duplicate") in viewer_flags.locator("[data-flag=near_duplicate]").inner_text()
    page.wait_for_function("document.querySelector('[data-testid=viewer-result]').complete")
    page.screenshot(path=str(ARTIFACTS / "journey_review_flags_viewer_1366.png"))
    page.keyboard.press("g")
    page.wait_for_function("(title) => document.querySelector('.viewer-title').textContent === title",
                           arg=f"4. {names[3]}")
    assert "Unrelated" in viewer_flags.inner_text()
    assert "G next flagged" in page.locator(".viewer-keys").inner_text()
    page.keyboard.press("Escape")

    # A reload keeps the filter; Flagged first orders the rest after them, and a reload keeps that too.
    page.reload()
    page.wait_for_selector("body[data-ready=true]")
    wait_names(page, flagged)
    assert page.locator("[data-testid=flag-filter]").input_value() == "any"
    page.select_option("[data-testid=flag-filter]", "")
    wait_names(page, names)
    page.check("[data-testid=sort-flagged]")
    wait_names(page, flagged + [names[0], names[6]])
    page.screenshot(path=str(ARTIFACTS / "journey_review_flags_flagged_first_1366.png"))
    page.reload()
    page.wait_for_selector("body[data-ready=true]")
    wait_names(page, flagged + [names[0], names[6]])
    assert page.locator("[data-testid=sort-flagged]").is_checked()
    page.click("[data-testid=lang-switch]")  # the labels in Chinese too; the reasons stay the server's
    assert page.locator("[data-testid=flag-filter] option[value=blank]").inner_text() == "空白（1）"
    assert page.locator("[data-testid=task-card] .result [data-flag=blank]").inner_text() == "空白"
    page.click("[data-testid=lang-switch]")


# --------------------------------------------------------------------------- a pilot, then the rest


def test_try_on_3_first_then_run_the_rest_with_an_edited_prompt(page, server, fake, tmp_path):
    page.set_viewport_size({"width": 1366, "height": 768})
    names = [f"photo{number:02d}.{'jpg' if number % 3 == 2 else 'png'}" for number in range(1, 10)]
    fill_profile(page, fake.url("g3_stream_dataurl", CHAT), "sk-pilot-1")
    pick_folder(page, make_photos(tmp_path / "photos", MIXED[:9]), 9)
    page.fill("[data-testid=pilot-input]", "3")
    run_id = start_run(page, "make the sky purple")
    page.wait_for_selector(".toast:has-text('Pilot started: 3 tasks; 6 held until you run the rest')")
    first = idle(server, run_id)
    assert (first["progress"]["done"], first["progress"]["held"]) == (3, 6)
    assert [t["source_name"] for t in first["tasks"] if t["status"] == "done"] == [names[0], names[3], names[6]]
    wait_chip(page, "done", 3)
    wait_chip(page, "held", 6)
    rest = page.locator("[data-testid=run-rest]")
    rest.wait_for(state="visible")
    assert rest.inner_text() == "Run the rest (6)"
    wait_shown(page, "[data-testid=task-card][data-status=held]", 6)
    assert len(image_calls(fake)) == 3

    # The review: the Done chip shows the pilot's three, each with its result.
    page.click("#counts [data-status=done]")
    wait_names(page, [names[0], names[3], names[6]])
    assert page.locator("[data-testid=task-card] .result").count() == 3 * len(fake.expected("g3_stream_dataurl"))
    page.screenshot(path=str(ARTIFACTS / "journey_pilot_review_1366.png"))
    page.click("#counts [data-status='']")

    # Run the rest with an edited prompt: the dialog opens with the run's prompt.
    rest.click()
    dialog = page.locator("[data-testid=release-dialog]")
    dialog.wait_for(state="visible")
    assert page.input_value("[data-testid=release-prompt]") == "make the sky purple"
    assert "6 tasks are held; 3 already tried." in dialog.inner_text()
    page.fill("[data-testid=release-prompt]", "make the sky orange")
    page.screenshot(path=str(ARTIFACTS / "journey_pilot_release_1366.png"))
    with page.expect_response(lambda r: r.url.endswith(f"/api/runs/{run_id}/release")) as answer:
        page.click("[data-testid=release-confirm]")
    assert answer.value.status == 200 and answer.value.json()["queued"] == 6, answer.value.text()
    dialog.wait_for(state="hidden")
    page.wait_for_selector("#run-title:text-is('make the sky orange')")
    final = wait_all_done(page, server, run_id, 9)
    rest.wait_for(state="hidden")
    assert page.locator("#counts [data-status=held]").count() == 0

    # The gateway got the old prompt three times (the pilot, never again) and the new one six times.
    prompts = [sent_chat(call)[0] for call in image_calls(fake)]
    assert prompts == ["make the sky purple"] * 3 + ["make the sky orange"] * 6
    by_task = {t["source_name"]: t["results"][0]["prompt"] for t in final["tasks"]}
    assert [name for name in names if by_task[name] == "make the sky purple"] == [names[0], names[3], names[6]]
    page.screenshot(path=str(ARTIFACTS / "journey_pilot_done_1366.png"))

    # The form keeps "Try on N first" in its draft; the labels come in Chinese too.
    page.reload()
    page.wait_for_selector("body[data-ready=true]")
    assert page.input_value("[data-testid=pilot-input]") == "3"
    page.click("[data-testid=lang-switch]")
    assert page.locator("#run-form label.pilot").inner_text().split() == ["先试", "张"]
    page.click("[data-testid=lang-switch]")


# --------------------------------------------------------------------------- what a run cost


def test_prices_in_the_profile_then_the_runs_spend_in_the_run_bar(page, server, fake, tmp_path):
    page.set_viewport_size({"width": 1366, "height": 768})
    # A gateway that reports tokens but no cost (OpenRouter without `cost`); each source's first call fails
    # mid-stream after reporting what it used, and is retried: eight calls for four pictures, all paid.
    fill_profile(page, fake.url("openrouter.nocost=1.fail=1.prompt=1000.completion=1290", CHAT), "sk-spend-1",
                 concurrency=2)
    page.fill("#api-form [name=max_retries]", "1")
    open_advanced(page)
    prices = page.locator("[data-testid=prices]")
    prices.scroll_into_view_if_needed()
    page.fill("[data-testid=price-image]", "0.04")
    page.fill("[data-testid=price-input-mtok]", "5")
    page.fill("[data-testid=price-output-mtok]", "30")
    page.fill("[data-testid=price-currency]", "usd")
    assert page.evaluate("(s => s.scrollWidth <= s.clientWidth)(document.querySelector('.sidebar'))")  # fits, wraps
    page.screenshot(path=str(ARTIFACTS / "journey_spend_prices_1366.png"))
    saved = save_settings(page)
    assert saved["api"]["prices"] == {"image": 0.04, "input_mtok": 5.0, "output_mtok": 30.0, "currency": "USD"}

    pick_folder(page, make_photos(tmp_path / "photos", MIXED[:4]), 4)
    run_id = start_run(page, "make the sky purple")
    final = wait_all_done(page, server, run_id, 4)
    good, failed = 0.04 + 1000 * 5 / 1e6 + 1290 * 30 / 1e6, 1000 * 5 / 1e6 + 1290 * 30 / 1e6
    assert final["spend"]["calls"] == 8 and final["spend"]["cost"] == pytest.approx(4 * (good + failed))
    assert len(image_calls(fake)) == 8

    # The run bar says it in words: calls and money, the details in its tooltip.
    spend = page.locator("[data-testid=run-spend]")
    page.wait_for_function("() => document.querySelector('[data-testid=run-spend]')?.textContent === '8 calls · $0.5096'",
                           timeout=WAIT_MS)
    title = spend.get_attribute("title")
    assert "4 images returned" in title and "8,000 in, 10,320 out" in title and "Cost known for 8 of 8 calls" in title
    card = cards(page, "done").first.locator(".attempts")
    assert card.inner_text() == "2 attempts" and card.get_attribute("title").startswith("2 calls · $0.1274")
    day = page.locator("[data-testid=day-spend]")
    page.wait_for_function("() => document.querySelector('[data-testid=day-spend]')?.textContent.includes('$0.5096')",
                           timeout=WAIT_MS)
    assert day.inner_text() == "Today: 8 calls · $0.5096" and "127.0.0.1 · " + MODEL in day.get_attribute("title")
    box = spend.bounding_box()
    assert box and box["x"] + box["width"] <= 1366 and box["y"] + box["height"] <= 768  # in sight on a laptop
    page.screenshot(path=str(ARTIFACTS / "journey_spend_runbar_1366.png"))

    # After a reload the prices are in the form and the spend in the run bar; the labels come in Chinese too.
    page.reload()
    page.wait_for_selector("body[data-ready=true]")
    page.wait_for_function("() => document.querySelector('[data-testid=run-spend]')?.textContent === '8 calls · $0.5096'",
                           timeout=WAIT_MS)
    open_advanced(page)
    assert page.input_value("[data-testid=price-output-mtok]") == "30"
    assert page.input_value("[data-testid=price-call]") == ""
    page.click("[data-testid=lang-switch]")
    assert page.locator("#prices legend").inner_text() == "价格（网关未报告花费时使用）"
    assert spend.inner_text().startswith("8 次调用 · ")
    page.click("[data-testid=lang-switch]")


# --------------------------------------------------------------------------- what a run will cost, before it starts

def _preview_text(page, expected: str) -> str:
    """Click Preview and wait until the preview's estimate says `expected`; return the preview's text.

    The estimate's answer is waited for first: the last preview, said again in a new language, may
    already hold `expected`."""
    with page.expect_response(lambda r: r.url.endswith("/api/runs/estimate")):
        page.click("#scan")
    page.wait_for_function("(text) => document.querySelector('#scan-output')?.textContent.includes(text)",
                           arg=expected, timeout=WAIT_MS)
    return page.locator("#scan-output").inner_text()


def test_the_estimate_after_preview_then_a_pilot_then_the_rest(page, server, fake, tmp_path):
    page.set_viewport_size({"width": 1366, "height": 768})
    # A gateway that reports what each call cost (OpenRouter's usage.cost): 0.05 a call.
    fill_profile(page, fake.url("openrouter.cost=0.05", CHAT), "sk-estimate-1")
    folder = make_photos(tmp_path / "photos", MIXED[:9])
    page.fill("[data-testid=prompt-input]", "make the sky purple")
    page.fill("[data-testid=path-input]", str(folder))
    text = _preview_text(page, "Estimate: 9 calls, 9 images")
    assert "cost unknown (add prices to the API profile, under Advanced, to know)" in text  # no prices, no history

    # Prices in the profile: the preview prices the run, and the pilot once "Try on 3 first" is filled in.
    open_advanced(page)
    page.fill("[data-testid=price-call]", "0.04")
    save_settings(page)
    page.fill("[data-testid=pilot-input]", "3")
    text = _preview_text(page, "Trying 3 first")
    assert "Estimate: 9 calls, 9 images · ≈ $0.36 (from your prices)" in text and "Trying 3 first: ≈ $0.12" in text
    page.locator("#scan-output").scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / "journey_estimate_1366.png"))

    # The pilot, then the rest: nine calls in all, each source once; the gateway's cost wins over the prices.
    run_id = start_run(page, "make the sky purple")
    page.wait_for_selector(".toast:has-text('Pilot started: 3 tasks; 6 held until you run the rest')")
    assert idle(server, run_id)["progress"]["held"] == 6 and len(image_calls(fake)) == 3
    page.locator("[data-testid=run-rest]").click()
    page.locator("[data-testid=release-dialog]").wait_for(state="visible")
    with page.expect_response(lambda r: r.url.endswith(f"/api/runs/{run_id}/release")) as released:
        page.click("[data-testid=release-confirm]")
    assert released.value.status == 200, released.value.text()
    final = wait_all_done(page, server, run_id, 9)
    assert final["spend"]["calls"] == 9 and final["spend"]["cost"] == pytest.approx(0.45)
    assert len(image_calls(fake)) == 9
    page.wait_for_function("() => document.querySelector('[data-testid=run-spend]')?.textContent === '9 calls · $0.45'",
                           timeout=WAIT_MS)

    # Without prices, the next estimate of this API and model comes from what its calls cost so far.
    open_advanced(page)
    page.fill("[data-testid=price-call]", "")
    save_settings(page)
    page.fill("[data-testid=pilot-input]", "")
    page.fill("[data-testid=path-input]", str(make_photos(tmp_path / "more", MIXED[:4])))
    text = _preview_text(page, "(the average of 9 earlier calls of this model)")
    assert "Estimate: 4 calls, 4 images · ≈ $0.20 (the average of 9 earlier calls of this model)" in text
    page.click("[data-testid=lang-switch]")
    assert "预估：4 次调用，4 张图片" in _preview_text(page, "本模型此前 9 次调用的平均")
    page.click("[data-testid=lang-switch]")


# --------------------------------------------------------------------------- a budget

def test_a_budget_pauses_the_run_and_raising_it_finishes_the_run(page, server, fake, tmp_path):
    page.set_viewport_size({"width": 1366, "height": 768})
    fill_profile(page, fake.url("openrouter.cost=0.25.s=0.05", CHAT), "sk-budget-1", concurrency=1)
    pick_folder(page, make_photos(tmp_path / "photos", MIXED[:6]), 6)
    page.fill("[data-testid=budget-input]", "0.5")
    run_id = start_run(page, "make the sky purple")
    # 0.25 a call: two calls fit in 0.50; the third could pass it, so the run pauses with four tasks waiting.
    page.wait_for_selector("#cooling:has-text('the budget of 0.50 USD is reached')", timeout=WAIT_MS)
    paused = idle(server, run_id)
    assert (paused["progress"]["done"], paused["progress"]["pending"], paused["progress"]["failed"]) == (2, 4, 0)
    wait_chip(page, "done", 2)
    page.wait_for_function("() => document.querySelector('[data-testid=run-spend]')?.textContent === '2 calls · $0.50'",
                           timeout=WAIT_MS)
    assert page.input_value("[data-testid=run-budget]") == "0.5"
    page.screenshot(path=str(ARTIFACTS / "journey_budget_paused_1366.png"))

    # Raise the budget in the run bar, then Resume: the four others run, each source called once.
    page.fill("[data-testid=run-budget]", "2")
    with page.expect_response(lambda r: r.url.endswith(f"/api/runs/{run_id}") and r.request.method == "PATCH") as answer:
        page.press("[data-testid=run-budget]", "Enter")
    assert answer.value.status == 200 and answer.value.json()["budget"] == 2
    with page.expect_response(lambda r: r.url.endswith(f"/api/runs/{run_id}/resume")) as resumed:
        page.click("[data-testid=resume]")
    assert resumed.value.status == 200 and resumed.value.json()["queued"] == 4, resumed.value.text()
    final = wait_all_done(page, server, run_id, 6)
    assert final["spend"]["calls"] == 6 and final["spend"]["cost"] == pytest.approx(1.5) and len(image_calls(fake)) == 6
    page.wait_for_selector("#cooling", state="hidden")
    page.wait_for_function("() => document.querySelector('[data-testid=run-spend]')?.textContent === '6 calls · $1.50'",
                           timeout=WAIT_MS)
    page.screenshot(path=str(ARTIFACTS / "journey_budget_done_1366.png"))

    # The form keeps the budget in its draft; the labels come in Chinese too.
    page.reload()
    page.wait_for_selector("body[data-ready=true]")
    assert page.input_value("[data-testid=budget-input]") == "0.5"
    page.click("[data-testid=lang-switch]")
    assert page.locator(".budget-row span[data-i18n=budget]").inner_text() == "预算"
    page.click("[data-testid=lang-switch]")


# --------------------------------------------------------------------------- a comparison, then one variant for the folder


def test_compare_two_prompts_on_two_photos_then_use_the_second_for_the_folder(page, server, fake, tmp_path):
    page.set_viewport_size({"width": 1366, "height": 768})
    folder = make_photos(tmp_path / "photos", MIXED[:6])
    names = sorted(path.name for path in folder.iterdir())
    by_bytes = {path.read_bytes(): path.name for path in folder.iterdir()}
    fill_profile(page, fake.url("restyle", CHAT), "sk-compare-1")
    pick_folder(page, folder, 6)
    page.fill("[data-testid=prompt-input]", "make it dusk")

    # Compare…: two variants, the first with the form's prompt, on a sample of 2.
    page.click("[data-testid=compare-open]")
    dialog = page.locator("[data-testid=compare-dialog]")
    dialog.wait_for(state="visible")
    variants = page.locator("[data-testid=compare-variant]")
    assert variants.count() == 2
    assert page.input_value("[data-testid=compare-sample]") == "3"
    page.fill("[data-testid=compare-sample]", "2")
    variants.nth(0).locator("[data-testid=variant-name]").fill("Dusk")
    assert variants.nth(0).locator("[data-testid=variant-prompt]").input_value() == "make it dusk"
    variants.nth(1).locator("[data-testid=variant-name]").fill("Blue hour")
    variants.nth(1).locator("[data-testid=variant-prompt]").fill("make it blue hour")
    page.screenshot(path=str(ARTIFACTS / "journey_compare_dialog_1366.png"))
    with page.expect_response(lambda r: r.url.endswith("/api/comparisons") and r.request.method == "POST") as answer:
        page.click("[data-testid=compare-start]")
    assert answer.value.status == 201, answer.value.text()
    runs = {run["name"]: run["run_id"] for run in answer.value.json()["runs"]}
    dialog.wait_for(state="hidden")

    # The side-by-side view: a row per sampled photo, each variant's pictures in its column.
    view = page.locator("[data-testid=comparison]")
    view.wait_for(state="visible")
    for run_id in runs.values():
        idle(server, run_id)
    per_call = 2  # the restyle scenario answers two pictures a call
    page.wait_for_function("(n) => document.querySelectorAll('[data-testid=comparison] td[data-variant] img').length === n",
                           arg=2 * 2 * per_call, timeout=WAIT_MS)
    rows = view.locator("tr[data-source]")
    assert [rows.nth(i).get_attribute("data-source") for i in range(rows.count())] == [names[0], names[3]]
    for i in range(2):
        assert rows.nth(i).locator("td[data-variant=Dusk] img").count() == per_call
        assert rows.nth(i).locator("td[data-variant='Blue hour'] img").count() == per_call
        assert rows.nth(i).locator("td.comparison-source img").count() == 1
    headers = view.locator("th[data-variant]")
    assert [headers.nth(i).get_attribute("data-variant") for i in range(2)] == ["Dusk", "Blue hour"]
    for i in range(2):
        assert "2 calls" in headers.nth(i).locator("[data-testid=variant-spend]").inner_text()
    page.wait_for_function("() => [...document.querySelectorAll('[data-testid=comparison] img')].every((i) => i.complete && i.naturalWidth)",
                           timeout=WAIT_MS)
    page.screenshot(path=str(ARTIFACTS / "journey_compare_view_1366.png"))
    assert len(image_calls(fake)) == 4

    # Use this one on the second: its run goes on to the four other photos, and opens.
    with page.expect_response(lambda r: r.url.endswith("/choose")) as chosen:
        view.locator("th[data-variant='Blue hour'] [data-testid=use-variant]").click()
    assert chosen.value.status == 200 and chosen.value.json() == {"run_id": runs["Blue hour"], "queued": 4}
    page.locator("[data-testid=comparison-view]").wait_for(state="hidden")
    page.wait_for_selector("#run-title:text-is('make it blue hour')")
    final = wait_all_done(page, server, runs["Blue hour"], 6)
    assert {t["source_name"] for t in final["tasks"]} == set(names)
    sent = [(prompt, by_bytes.get(images[0])) for prompt, images in map(sent_chat, image_calls(fake))]
    assert sorted(name for prompt, name in sent if prompt == "make it blue hour") == names  # each photo once
    assert sorted(name for prompt, name in sent if prompt == "make it dusk") == [names[0], names[3]]
    assert idle(server, runs["Dusk"])["progress"]["held"] == 4  # the other variant stays as it was

    # The last comparison opens again from the dialog, the choice kept, in Chinese too.
    page.click("[data-testid=lang-switch]")
    page.click("[data-testid=compare-open]")
    page.click("[data-testid=compare-last]")
    view.wait_for(state="visible")
    page.wait_for_selector("[data-testid=comparison] th[data-variant='Blue hour'] [data-testid=use-variant]:text-is('已选 ✓')")
    assert view.locator("th[data-variant=Dusk] [data-testid=use-variant]").is_hidden()
    page.screenshot(path=str(ARTIFACTS / "journey_compare_chosen_zh_1366.png"))
    page.click("[data-testid=comparison-close]")
    page.click("[data-testid=lang-switch]")


# --------------------------------------------------------------------------- captions


def open_result(page, position: int) -> None:
    """Open the viewer on the first result of the card at `position`."""
    cards(page).nth(position).locator("[data-testid=result-image]").first.click()
    page.locator("[data-testid=viewer]").wait_for(state="visible")


def card_captions(page) -> list[str]:
    """The caption line of each card on screen, in task order ("" for a card without one)."""
    return page.evaluate("""() => [...document.querySelectorAll('[data-testid=task-card]')]
        .sort((a, b) => a.getBoundingClientRect().top - b.getBoundingClientRect().top
                        || a.getBoundingClientRect().left - b.getBoundingClientRect().left)
        .map((card) => card.querySelector('[data-testid=card-caption]')?.textContent || '')""")


def wait_card_captions(page, expected: list[str]) -> None:
    wait_until(lambda: card_captions(page) == expected, 15, f"the cards to show the captions {expected}")


def captions_of(server: ServerProcess, run_id: str) -> list[str | None]:
    """Each task's first result's own caption, in task order, as the server has it."""
    tasks = sorted(listing(server, run_id)["tasks"], key=lambda t: t["index"])
    return [t["results"][0]["caption"] if t["results"] else None for t in tasks]


def save_dataset(page, out: Path, layout: str, *, trigger: str = "", caption: str = "") -> dict:
    """Open Save…, save every result (selected or not) in `layout`; return the save's answer."""
    page.click("#open-save")
    form = page.locator("#save-form")
    form.locator("[name=output_dir]").fill(str(out))
    form.locator("[name=layout]").select_option(layout)
    form.locator("[name=caption]").select_option(caption)
    form.locator("[name=trigger]").fill(trigger) if form.locator("[name=trigger]").is_enabled() else None
    form.locator("[name=only_selected]").uncheck()
    with page.expect_response(lambda r: "/save?job=" in r.url and r.request.method == "POST") as answer:
        form.locator("[type=submit]").click()
    assert answer.value.status == 200, answer.value.text()
    page.locator("[data-testid=save-report]").wait_for(state="visible")
    return answer.value.json()


def test_captions_edit_in_the_viewer_with_the_keyboard_then_save_for_ai_toolkit(page, server, fake, tmp_path):
    page.set_viewport_size({"width": 1366, "height": 768})
    folder = make_photos(tmp_path / "photos", [(64, 64)] * 3)
    names = sorted(p.name for p in folder.iterdir())
    fill_profile(page, fake.url("latency.s=0", CHAT), "sk-caption-1")
    pick_folder(page, folder, 3)
    run_id = start_run(page, "turn it into a watercolour")
    wait_all_done(page, server, run_id, 3)
    calls = len(image_calls(fake))

    # Tab into the caption, type letters that are review shortcuts (a, g, n, r, v, u, f, i, digits, space).
    open_result(page, 0)
    editor = page.locator("[data-testid=caption-editor]")
    assert editor.input_value() == ""
    assert "save rule's caption" in editor.get_attribute("placeholder")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement?.dataset.testid") == "caption-editor"
    typed = "a grey fern, vivid: run 2 in the rain"
    page.keyboard.type(typed)
    with page.expect_response(lambda r: "/api/results/" in r.url and r.request.method == "PATCH") as answer:
        page.keyboard.press("Control+Enter")
    assert answer.value.status == 200 and answer.value.json()["caption"] == typed
    assert json.loads(answer.value.request.post_data) == {"caption": typed}
    page.wait_for_selector("[data-testid=caption-state][data-state=saved]")
    assert page.evaluate("document.activeElement?.dataset.testid") == "caption-editor"  # Ctrl+Enter saves, stays
    page.screenshot(path=str(ARTIFACTS / "journey_captions_viewer_editor_1366.png"))
    page.keyboard.press("Escape")  # the first Esc leaves the caption; the viewer stays
    assert page.locator("[data-testid=viewer]").is_visible()
    page.keyboard.press("ArrowRight")
    page.wait_for_selector(f".viewer-title:text-is('2. {names[1]}')")
    assert editor.input_value() == ""

    # The second: typed with surrounding spaces and a new line, saved by leaving the box (Esc), trimmed.
    page.keyboard.press("Tab")
    with page.expect_response(lambda r: "/api/results/" in r.url and r.request.method == "PATCH") as answer:
        page.keyboard.type("  two lines\nof caption  ")
        page.keyboard.press("Escape")
    assert answer.value.json()["caption"] == "two lines\nof caption"
    page.wait_for_function("document.querySelector('[data-testid=caption-editor]').value === 'two lines\\nof caption'")
    page.keyboard.press("Escape")  # the second Esc closes the viewer
    page.locator("[data-testid=viewer]").wait_for(state="hidden")

    # Nothing the typing touched: no selection, no retry, no deletion.
    listed = sorted(listing(server, run_id)["tasks"], key=lambda t: t["index"])
    assert [[r["selected"] for r in t["results"]] for t in listed] == [[False]] * 3
    assert [t["attempts"] for t in listed] == [1, 1, 1] and len(image_calls(fake)) == calls
    assert captions_of(server, run_id) == [typed, "two lines\nof caption", None]
    wait_card_captions(page, [typed, "two lines", ""])

    # A reload: the captions are there, on the cards and in the viewer.
    page.reload()
    page.wait_for_selector("body[data-ready=true]")
    wait_card_captions(page, [typed, "two lines", ""])
    open_result(page, 1)
    assert editor.input_value() == "two lines\nof caption"
    page.keyboard.press("Escape")

    # Saving with no caption files says the own captions are left out; ai-toolkit writes them, trigger first.
    page.click("#open-save")
    page.locator("#save-form [name=layout]").select_option("flat")
    page.locator("#save-form [name=caption]").select_option("none")
    note = page.locator("[data-testid=save-caption-note]")
    note.wait_for(state="visible")
    assert "2 results have captions of their own" in note.inner_text()
    page.locator("#save-form [name=caption]").select_option("")
    assert note.is_visible()  # flat, by layout: still no captions
    page.locator("#save-form [name=caption]").select_option("prompt")
    assert note.is_hidden()
    out = tmp_path / "datasets"
    saved = save_dataset(page, out, "aitoolkit_edit", trigger="wcstyle")
    assert note.is_hidden()  # ai-toolkit writes captions by default
    assert saved["captions"] == {"from_results": 2, "from_rule": 1}
    assert "2 from the results' own captions, 1 from the rule" in page.inner_text("[data-testid=save-report]")
    target = out / "dataset_target"
    texts = {p.stem: p.read_text(encoding="utf-8") for p in target.glob("*.txt")}
    stems = [Path(n).stem for n in names]
    assert texts == {stems[0]: f"wcstyle {typed}", stems[1]: "wcstyle two lines\nof caption",
                     stems[2]: "wcstyle turn it into a watercolour"}, texts
    page.screenshot(path=str(ARTIFACTS / "journey_captions_saved_1366.png"))
    page.click("#save-close")

    # On a narrow window, in Chinese: the caption box and the cards' lines still read.
    page.set_viewport_size({"width": 900, "height": 700})
    page.click("[data-testid=lang-switch]")
    wait_card_captions(page, [typed, "two lines", ""])
    open_result(page, 0)
    assert editor.input_value() == typed
    page.screenshot(path=str(ARTIFACTS / "journey_captions_viewer_editor_zh_900.png"))
    page.keyboard.press("Escape")
    page.screenshot(path=str(ARTIFACTS / "journey_captions_cards_zh_900.png"))
    page.click("[data-testid=lang-switch]")


def test_captions_find_and_replace_with_a_regex_preview_then_apply(page, server, fake, tmp_path):
    page.set_viewport_size({"width": 1366, "height": 768})
    folder = make_photos(tmp_path / "photos", [(64, 64)] * 4)
    fill_profile(page, fake.url("latency.s=0", CHAT), "sk-caption-2")
    pick_folder(page, folder, 4)
    run_id = start_run(page, "a watercolour")
    wait_all_done(page, server, run_id, 4)
    captions = ["Photo of a red car, 2019", "photo of a blue car", "PHOTO OF A cat, 2021", None]
    tasks = sorted(listing(server, run_id)["tasks"], key=lambda t: t["index"])
    for task, caption in zip(tasks, captions):
        if caption:  # typed in the viewer in the first journey; here set through the API
            assert server.http.patch(f"/api/results/{task['results'][0]['id']}", json={"caption": caption}).status_code == 200
    wait_card_captions(page, [c or "" for c in captions])

    page.click("[data-testid=captions-replace]")
    dialog = page.locator("[data-testid=replace-dialog]")
    dialog.wait_for(state="visible")
    preview = page.locator("[data-testid=replace-preview]")
    page.keyboard.type("photo of (a|an) ")  # the find box has the focus
    page.check("[data-testid=replace-regex]")
    page.fill("[data-testid=replace-with]", r"\1 ")
    page.wait_for_function("document.querySelector('[data-testid=replace-preview]').textContent.includes('1 caption will change')")
    page.check("[data-testid=replace-ignore-case]")
    page.wait_for_function("document.querySelector('[data-testid=replace-preview]').textContent.includes('3 captions will change')")
    text = preview.inner_text()
    assert "1 result has no caption of its own" in text, text
    assert "a red car, 2019" in text and "A cat, 2021" in text, text
    assert captions_of(server, run_id) == captions  # a preview writes nothing
    page.fill("[data-testid=replace-with]", r"\2")  # no group 2: the server says so, Replace is off
    page.wait_for_function("document.querySelector('[data-testid=replace-preview]').classList.contains('is-error')")
    assert "replace" in preview.inner_text() and page.locator("[data-testid=replace-apply]").is_disabled()
    page.fill("[data-testid=replace-with]", r"\1 ")
    page.wait_for_function("document.querySelector('[data-testid=replace-preview]').textContent.includes('3 captions will change')")
    assert page.locator("[data-testid=replace-apply]").is_enabled()
    page.screenshot(path=str(ARTIFACTS / "journey_captions_replace_preview_1366.png"))
    with page.expect_response(lambda r: r.url.endswith("/captions/replace") and r.request.method == "POST"
                              and not json.loads(r.request.post_data)["preview"]) as answer:
        page.click("[data-testid=replace-apply]")
    assert answer.value.json()["changed"] == 3
    dialog.wait_for(state="hidden")
    page.wait_for_selector(".toast-ok:text-is('Changed 3 captions')")
    after = ["a red car, 2019", "a blue car", "A cat, 2021", ""]
    wait_card_captions(page, after)
    assert captions_of(server, run_id) == [c or None for c in after]

    # A bad pattern is named in the dialog, in Chinese too; nothing is written.
    page.click("[data-testid=lang-switch]")
    page.click("[data-testid=captions-replace]")
    page.fill("[data-testid=replace-find]", "(unclosed")
    page.wait_for_function("document.querySelector('[data-testid=replace-preview]').classList.contains('is-error')")
    assert "'find' 不是有效的正则表达式：" in preview.inner_text()  # the pattern's own error quoted after it
    page.screenshot(path=str(ARTIFACTS / "journey_captions_replace_error_zh_1366.png"))
    page.keyboard.press("Escape")
    dialog.wait_for(state="hidden")
    page.click("[data-testid=lang-switch]")
    assert captions_of(server, run_id) == [c or None for c in after]


def save_api_preset(page, name: str, url: str, model: str) -> None:
    """Type a profile into the form and keep it as a named API preset (as a person does in the API panel)."""
    fill_profile(page, url, "sk-vision-7", model=model)
    page.watch.prompt_answer = name
    with page.expect_response(lambda r: "/api/presets/api/" in r.url and r.request.method == "PUT") as answer:
        page.click("[data-testid=api-preset-save]")
    assert answer.value.status == 200, answer.value.text()


def vision_calls(fake: FakeUpstream) -> list:
    return [r for r in fake.requests if (r.scenario or "").startswith("vision") and r.method == "POST"]


def start_captioning(page, preset: str, *, instruction_preset: str = "", overwrite: bool = False) -> dict:
    """Open Caption with a model, choose the API preset (and an instruction preset), Start; return the job."""
    page.click("[data-testid=captions-generate]")
    dialog = page.locator("[data-testid=caption-dialog]")
    dialog.wait_for(state="visible")
    page.select_option("[data-testid=caption-preset]", preset)
    if instruction_preset:
        page.select_option("[data-testid=caption-instruction-preset]", instruction_preset)
    page.locator("[data-testid=caption-overwrite]").set_checked(overwrite)
    with page.expect_response(lambda r: r.url.endswith("/captions/generate")) as answer:
        page.click("[data-testid=caption-start]")
    assert answer.value.status == 202, answer.value.text()
    dialog.wait_for(state="hidden")
    return answer.value.json()


def test_captions_from_a_vision_model_watched_reloaded_saved_and_a_refusal_named(page, server, fake, tmp_path):
    page.set_viewport_size({"width": 1366, "height": 768})
    folder = make_photos(tmp_path / "photos", [(64, 64)] * 4)
    names = sorted(p.name for p in folder.iterdir())
    # Two vision models as API presets: one that describes the image (slowly, one call at a time), one that declines.
    save_api_preset(page, "refuser", fake.url("vision_refuse", CHAT), "vision-captioner-1")
    page.fill("#api-form [name=concurrency]", "1")
    # The first answer comes at once, the others after 2 s each: a reload after one or two lands mid-job.
    save_api_preset(page, "describer", fake.url("vision_caption.s=2.fast=1", CHAT), "vision-captioner-1")
    fill_profile(page, fake.url("latency.s=0", CHAT), "sk-caption-3")  # the image model the run uses
    pick_folder(page, folder, 4)
    run_id = start_run(page, "a watercolour")
    wait_all_done(page, server, run_id, 4)
    images = len(image_calls(fake))

    # The dialog: the describer preset, a short tag list turned into an edited instruction.
    page.click("[data-testid=captions-generate]")
    page.locator("[data-testid=caption-dialog]").wait_for(state="visible")
    assert page.locator("[data-testid=caption-preset] option").all_inner_texts()[0] == "— current settings —"
    page.select_option("[data-testid=caption-preset]", "describer")
    page.select_option("[data-testid=caption-instruction-preset]", "tags")
    tags = page.input_value("[data-testid=caption-instruction]")
    assert tags.strip(), "the tags preset fills the instruction"
    page.fill("[data-testid=caption-instruction]", tags + " Keep it short.")
    assert page.input_value("[data-testid=caption-instruction-preset]") == ""  # edited: my own
    assert "4 results to caption" in page.inner_text("[data-testid=caption-scope]")
    page.screenshot(path=str(ARTIFACTS / "journey_captions_model_dialog_1366.png"))
    with page.expect_response(lambda r: r.url.endswith("/captions/generate")) as answer:
        page.click("[data-testid=caption-start]")
    assert answer.value.status == 202, answer.value.text()
    job = answer.value.json()["job"]

    # Progress in the run bar; a reload mid-way finds the job again; captions arrive on the cards.
    progress = page.locator("[data-testid=caption-progress]")
    page.wait_for_function("/^[12] \\/ 4 captioned/.test(document.querySelector('[data-testid=caption-progress]').textContent)",
                           timeout=WAIT_MS)
    page.screenshot(path=str(ARTIFACTS / "journey_captions_model_progress_1366.png"))
    page.reload()
    page.wait_for_selector("body[data-ready=true]")
    page.locator("[data-testid=caption-job]").wait_for(state="visible")
    assert page.locator("[data-testid=caption-cancel]").is_visible()
    page.wait_for_function("document.querySelector('[data-testid=caption-progress]').textContent"
                           ".startsWith('Captioning done: 4 / 4 captioned')", timeout=WAIT_MS)
    expected = "a photo of a "
    wait_until(lambda: all(c.startswith(expected) and c.endswith(", 512x512") for c in card_captions(page)),
               15, "a caption on every card")
    captions = captions_of(server, run_id)
    assert card_captions(page) == captions
    calls = vision_calls(fake)
    assert len(calls) == 4 and len(image_calls(fake)) == images + 4  # one call per result, nothing else
    for call in calls:
        content = call.json["messages"][0]["content"]
        assert content[0] == {"type": "text", "text": tags + " Keep it short."}
        assert content[1]["image_url"]["url"].startswith("data:image/jpeg;base64,")
        assert "size" not in call.json and "modalities" not in call.json
    assert server.get(f"/api/caption-jobs/{job}").json()["captioned"] == 4
    assert page.inner_text("[data-testid=caption-spend]") == "4 calls"  # no prices: calls only
    page.screenshot(path=str(ARTIFACTS / "journey_captions_model_done_1366.png"))

    # Saved for ai-toolkit: each .txt is the model's caption.
    out = tmp_path / "datasets"
    saved = save_dataset(page, out, "aitoolkit_edit")
    assert saved["captions"] == {"from_results": 4, "from_rule": 0}
    target = out / "dataset_target"
    texts = {p.stem: p.read_text(encoding="utf-8") for p in target.glob("*.txt")}
    assert texts == {Path(n).stem: c for n, c in zip(names, captions)}, texts
    page.click("#save-close")

    # The refuser, over every result: each failure says why, the captions stay as they were.
    page.click("[data-testid=caption-job-close]")
    start_captioning(page, "refuser", overwrite=True)
    page.wait_for_function("document.querySelector('[data-testid=caption-progress]').textContent"
                           ".startsWith('Captioning done: 0 / 4 captioned · 4 failed')", timeout=WAIT_MS)
    failures = page.locator("[data-testid=caption-failures]")
    failures.locator("summary").click()
    reasons = page.locator("[data-testid=caption-failure]").all_inner_texts()
    assert len(reasons) == 4 and all("declined" in reason for reason in reasons), reasons
    assert sorted(reason.split(" ", 1)[0] for reason in reasons) == names
    assert captions_of(server, run_id) == captions
    page.screenshot(path=str(ARTIFACTS / "journey_captions_model_refused_1366.png"))

    # Cancelled mid-way: what was written stays, nothing new starts.
    page.click("[data-testid=caption-job-close]")
    before = len(vision_calls(fake))
    second = start_captioning(page, "describer", overwrite=True)["job"]
    page.wait_for_function("/^[12] \\/ 4 captioned/.test(document.querySelector('[data-testid=caption-progress]').textContent)",
                           timeout=WAIT_MS)
    with page.expect_response(lambda r: r.url.endswith("/cancel")) as answer:
        page.click("[data-testid=caption-cancel]")
    assert answer.value.status == 200 and answer.value.json()["cancelled"] is True
    page.wait_for_function("document.querySelector('[data-testid=caption-progress]').textContent"
                           ".startsWith('Captioning cancelled: ')", timeout=WAIT_MS)
    assert page.locator("[data-testid=caption-cancel]").is_hidden()
    stopped = server.get(f"/api/caption-jobs/{second}").json()
    assert stopped["finished"] and 1 <= stopped["captioned"] < 4, stopped
    time.sleep(2.5)  # longer than a call: none starts after the cancel
    assert len(vision_calls(fake)) - before <= stopped["captioned"] + 1  # the one in flight at most
    assert captions_of(server, run_id) == captions  # rewritten alike: the same picture, the same words

    # Nothing left to caption without Overwrite: the server's reason, the dialog stays open.
    page.click("[data-testid=captions-generate]")
    page.select_option("[data-testid=caption-preset]", "describer")
    page.locator("[data-testid=caption-overwrite]").uncheck()
    page.click("[data-testid=caption-start]")
    page.wait_for_selector(".toast-error:has-text('nothing to caption')")
    assert page.locator("[data-testid=caption-dialog]").is_visible()
    assert "0 results to caption · 4 keep their caption" in page.inner_text("[data-testid=caption-scope]")
    page.keyboard.press("Escape")
    page.click("[data-testid=lang-switch]")  # the dialog and the job's line in Chinese
    page.click("[data-testid=captions-generate]")
    page.locator("[data-testid=caption-dialog]").wait_for(state="visible")
    assert "4 个保留已有标注" in page.inner_text("[data-testid=caption-scope]")
    page.screenshot(path=str(ARTIFACTS / "journey_captions_model_dialog_zh_1366.png"))
    page.keyboard.press("Escape")
    assert page.inner_text("[data-testid=caption-progress]").startswith(f"写标注已取消：已写 {stopped['captioned']} / 4")
    page.screenshot(path=str(ARTIFACTS / "journey_captions_model_cancelled_zh_1366.png"))
    page.click("[data-testid=lang-switch]")


# --------------------------------------------------------------------------- batch delivery

BATCH_CHIPS = "[data-testid=run-batches] [data-testid=batch-chip]"


def choose_batch_delivery(page, poll_s: int = 1) -> None:
    """Set Delivery to batch in the profile form's Advanced part, polling the batch every `poll_s` seconds."""
    open_advanced(page)
    assert not page.locator("[data-testid=batch-poll]").is_visible()  # live: no batch settings in the way
    page.select_option("[data-testid=delivery]", "batch")
    page.fill("[data-testid=batch-poll]", str(poll_s))
    assert page.input_value("[data-testid=batch-max]") == "1000"  # the default: one batch for a folder this size


def chip_texts(page) -> list[str]:
    return page.locator(BATCH_CHIPS).all_inner_texts()


def wait_chip_text(page, pattern: str, timeout: float = WAIT_MS) -> None:
    """Wait until a batch chip in the run bar matches the regular expression `pattern`."""
    page.wait_for_function("(p) => [...document.querySelectorAll('[data-testid=run-batches] [data-testid=batch-chip]')]"
                           ".some((chip) => new RegExp(p).test(chip.textContent))", arg=pattern, timeout=timeout)


def run_batches(server: ServerProcess, run_id: str) -> list[dict]:
    """The run's batches as the API lists them, oldest first."""
    return list(reversed(server.get(f"/api/runs/{run_id}").json()["batches"]))


def sent_batches(fake: FakeUpstream, server: ServerProcess, run_id: str) -> list[dict]:
    """Every submission the fake batch service received for this run's batches (by label), oldest first;
    a batch submitted twice would show twice."""
    labels = {batch["id"] for batch in run_batches(server, run_id)}
    return [sent for sent in fake.batches() if sent["label"] in labels]


def test_a_batch_run_from_the_profile_form_to_a_saved_ai_toolkit_dataset(page, server, fake, tmp_path):
    page.set_viewport_size({"width": 1366, "height": 768})
    # The provider's batch service answers after 2 s and refuses the first line (content policy).
    fill_profile(page, fake.url("batch.batch_s=2.batch_fail=1", CHAT), "sk-batch-1")
    choose_batch_delivery(page)
    page.fill("[data-testid=price-image]", "0.04")
    assert page.get_attribute("[data-testid=price-batch-discount]", "placeholder") == "0.5"  # empty: half price
    page.locator("[data-testid=delivery]").scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / "journey_batch_profile_1366.png"))
    saved = save_settings(page)["api"]
    assert (saved["delivery"], saved["batch_poll_s"], saved["batch_max_requests"]) == ("batch", 1, 1000)

    folder = make_photos(tmp_path / "photos", MIXED[:4])
    pick_folder(page, folder, 4)
    run_id = start_run(page, "make the sky purple")

    # While the batch is at the provider: a chip says how far it is, the cards wait with a badge, no rate.
    page.locator(BATCH_CHIPS).first.wait_for(state="visible", timeout=WAIT_MS)
    page.locator("[data-testid=task-batch]").first.wait_for(state="visible", timeout=WAIT_MS)
    assert "/min" not in page.inner_text("#rate")
    page.screenshot(path=str(ARTIFACTS / "journey_batch_waiting_1366.png"))
    wait_chip_text(page, r"^batch 1 · completed · 3/4 · 1 failed$")
    final = wait_settled(page, server, run_id)
    assert (final["progress"]["done"], final["progress"]["failed"]) == (3, 1), final["progress"]
    wait_shown(page, "[data-testid=task-card][data-status=done]", 3)  # the cards follow the counts
    wait_shown(page, "[data-testid=task-card][data-status=failed]", 1)
    assert page.locator("[data-testid=task-batch]:visible").count() == 0  # nothing waits any more
    sent = sent_batches(fake, server, run_id)
    assert len(sent) == 1 and sorted(sent[0]["keys"]) == sorted(t["id"] for t in final["tasks"])
    assert not [r for r in image_calls(fake) if r.path.endswith(CHAT)]  # nothing went as a live call
    failed = next(t for t in final["tasks"] if t["status"] == "failed")
    assert sent[0]["keys"][0] == failed["id"]
    card = cards(page, "failed").first
    assert "safety system" in card.locator(".error").inner_text()  # the provider's own words
    # Priced at half: the profile's per-image price times (1 − the default discount of 0.5).
    assert final["spend"]["cost"] == pytest.approx(3 * 0.04 * 0.5)
    page.wait_for_function("(id) => document.querySelector(`#history [data-run-id=\"${id}\"]`)?.textContent.includes('batch')",
                           arg=run_id, timeout=8_000)
    page.screenshot(path=str(ARTIFACTS / "journey_batch_done_1366.png"))

    # The refusal was a one-off: the same service without it; Retry failed sends only that task, in a new batch.
    page.fill("[data-testid=api-url]", fake.url("batch.batch_s=2", CHAT))
    click_run_button(page, "retry-failed")
    wait_chip_text(page, r"^batch 2 · completed · 1/1$")
    final = wait_all_done(page, server, run_id, 4)
    sent = sent_batches(fake, server, run_id)
    assert len(sent) == 2 and sent[1]["keys"] == [failed["id"]]
    assert [b["status"] for b in run_batches(server, run_id)] == ["completed", "completed"]
    assert chip_texts(page) == ["batch 1 · completed · 3/4 · 1 failed", "batch 2 · completed · 1/1"]

    # The dataset: four pairs for ai-toolkit, each a real picture with its caption.
    out = tmp_path / "datasets"
    report = save_dataset(page, out, "aitoolkit_edit", caption="prompt")
    assert report["captions"] == {"from_results": 0, "from_rule": 4}
    targets = sorted((out / "dataset_target").glob("*.png"))
    assert len(targets) == 4 and len(list((out / "dataset_control").iterdir())) == 4
    for target in targets:
        with Image.open(target) as image:
            image.verify()
        assert target.with_suffix(".txt").read_text(encoding="utf-8") == "make the sky purple"
    page.click("#save-close")

    # In Chinese, the chips and the history say the same.
    page.click("[data-testid=lang-switch]")
    assert chip_texts(page)[0] == "批量作业 1 · 已完成 · 3/4 · 1 个失败"
    assert "批量" in page.locator(f"#history [data-run-id=\"{run_id}\"]").inner_text()
    page.screenshot(path=str(ARTIFACTS / "journey_batch_done_zh_1366.png"))
    page.click("[data-testid=lang-switch]")


def test_a_batch_run_stopped_mid_batch_keeps_what_finished_and_resume_sends_the_rest(page, server, fake, tmp_path):
    page.set_viewport_size({"width": 1366, "height": 768})
    fill_profile(page, fake.url("batch.batch_s=12", CHAT), "sk-batch-2")
    choose_batch_delivery(page)
    save_settings(page)
    pick_folder(page, make_photos(tmp_path / "photos", MIXED[:6]), 6)
    run_id = start_run(page, "make the sky purple")

    # Two lines answered at the provider: Stop cancels the batch there.
    wait_until(lambda: (lambda b: b and b[0]["completed"] >= 2)(run_batches(server, run_id)), 30, "two lines answered")
    wait_chip_text(page, r"^batch 1 · in progress · [1-5]/6$")
    # The ETA comes from the provider's counts; a batch run has no rate of its own.
    page.wait_for_function("/ETA \\d/.test(document.querySelector('#rate').textContent)", timeout=WAIT_MS)
    assert "/min" not in page.inner_text("#rate")
    click_run_button(page, "stop-run")
    # The toast says the batch is being cancelled at the provider, and that what it finished first is kept.
    page.wait_for_function("[...document.querySelectorAll('.toast-ok')].some((t) => /cancelling \\d at the provider/"
                           ".test(t.textContent))", timeout=WAIT_MS)
    wait_chip_text(page, r"^batch 1 · cancelled · \d/6")
    final = wait_settled(page, server, run_id)
    done = [t["id"] for t in final["tasks"] if t["status"] == "done"]
    stopped = [t["id"] for t in final["tasks"] if t["status"] == "stopped"]
    assert len(done) >= 2 and len(done) + len(stopped) == 6, final["progress"]
    assert all(t["results"] for t in final["tasks"] if t["status"] == "done")  # what finished is kept
    assert all("cancelled" in (t["error"] or "") for t in final["tasks"] if t["status"] == "stopped")
    page.screenshot(path=str(ARTIFACTS / "journey_batch_stopped_1366.png"))

    # Resume sends only the rest, in a new batch; nothing is sent twice.
    click_run_button(page, "resume")
    wait_chip_text(page, rf"^batch 2 · completed · {len(stopped)}/{len(stopped)}$", timeout=45_000)
    wait_all_done(page, server, run_id, 6)
    sent = sent_batches(fake, server, run_id)
    assert len(sent) == 2 and sorted(sent[1]["keys"]) == sorted(stopped)
    assert [b["status"] for b in run_batches(server, run_id)] == ["cancelled", "completed"]


def test_a_gemini_batch_run_from_the_page(page, server, fake, tmp_path):
    """Gemini's batch mode from the same form: the chips follow its states, the pictures come back, one batch.
    The provider does not answer the first looks (503): the run bar says so, and the run finishes anyway."""
    page.set_viewport_size({"width": 1366, "height": 768})
    open_profile(page)
    page.select_option("[data-testid=api-mode]", "gemini")
    fill_profile(page, fake.url("batch.batch_s=2.batch_poll_fail=6", "/v1beta"), "AIza-Journey-Batch-1",
                 model="gemini-2.5-flash-image")
    choose_batch_delivery(page)
    saved = save_settings(page)["api"]
    assert (saved["api_mode"], saved["delivery"]) == ("gemini", "batch")
    pick_folder(page, make_photos(tmp_path / "photos", MIXED[:3]), 3)
    run_id = start_run(page, "make the sky purple")
    page.locator("[data-testid=task-batch]").first.wait_for(state="visible", timeout=WAIT_MS)
    page.wait_for_function("/could not be read at the provider \\d times in a row .*HTTP 503/"
                           ".test(document.getElementById('cooling').textContent)", timeout=WAIT_MS)
    page.screenshot(path=str(ARTIFACTS / "journey_batch_provider_silent_1366.png"))
    wait_chip_text(page, r"^batch 1 · completed · 3/3$")  # Gemini's "succeeded", in the page's words
    final = wait_all_done(page, server, run_id, 3)
    assert page.locator("#cooling").is_hidden()  # answered again: nothing to say any more
    assert all(len(task["results"]) == 1 for task in final["tasks"])
    sent = sent_batches(fake, server, run_id)
    assert len(sent) == 1 and sent[0]["service"] == "gemini" and len(sent[0]["keys"]) == 3
    assert [b["service"] for b in run_batches(server, run_id)] == ["gemini"]
    page.click("[data-testid=lang-switch]")
    assert chip_texts(page) == ["批量作业 1 · 已完成 · 3/3"]
    page.click("[data-testid=lang-switch]")


# --------------------------------------------------------------------------- Chinese first

# An English sentence on a Chinese page: three or more English words in a row ("must be one of").
ENGLISH_SENTENCE = re.compile(r"[A-Za-z][a-z']+(?:[ ,;:]+[A-Za-z][a-z']+){2,}")


def english_sentences(text: str, verbatim: tuple[str, ...] = ()) -> list[str]:
    """Return the English sentences in `text`, leaving out an upstream's own words quoted verbatim."""
    for quoted in verbatim:
        text = text.replace(quoted, " ")
    return ENGLISH_SENTENCE.findall(text)


def no_english(page, where: str, verbatim: tuple[str, ...] = ()) -> str:
    """Assert the visible text of `where` (a selector) holds no English sentence; return it."""
    text = "\n".join(page.locator(where).all_inner_texts())
    found = english_sentences(text, verbatim)
    assert not found, f"English on the Chinese page in {where}: {found}\n---\n{text}"
    return text


def no_english_hints(page, verbatim: tuple[str, ...] = ()) -> None:
    """Assert what a person reads on hovering, in an empty field and in the lists of the forms shown is not English."""
    hints = page.evaluate("""() => [...document.querySelectorAll('[title], [placeholder], [aria-label], select')]
        .filter((el) => el.offsetParent !== null)
        .flatMap((el) => [el.title, el.placeholder, el.getAttribute('aria-label'),
                          ...(el.tagName === 'SELECT' ? [...el.options].map((o) => o.textContent) : [])])
        .filter(Boolean)""")
    found = [hint for hint in hints if english_sentences(hint, verbatim)]
    assert not found, f"English hints or options on the Chinese page: {found}"


def test_chinese_first_a_failed_task_a_paused_run_a_bad_profile_a_bad_table_and_a_refused_save(
        page, server, fake, tmp_path):
    from openpyxl import Workbook

    from testkit.fake_scenarios import PICKY_REFUSAL

    quota_said = "上游账号额度已用尽 (quota exhausted)"  # the gateway's own words, quoted as they came
    verbatim = (PICKY_REFUSAL, quota_said)
    page.click("[data-testid=lang-switch]")
    page.wait_for_function("document.documentElement.lang === 'zh-CN'")
    # A bad profile: a URL the console cannot call, then a key typed with a full-width letter.
    open_profile(page)
    for name, value, field in (("api_url", "ftp://x", "api_url"), ("api_key", "sk-ａbc", "api_key")):
        page.fill(f"#api-form [name={name}]", value)
        page.click("[data-testid=save-settings]")
        page.locator(".toast-error").first.wait_for(timeout=WAIT_MS)
        said = no_english(page, ".toast-error")
        assert field in said and re.search(r"[\u4e00-\u9fff]", said), said
        dismiss_toasts(page)
        page.fill(f"#api-form [name={name}]", "")
    # A run where one source is refused with text and the gateway's quota then runs out.
    key = "sk-live-Zh000001"
    url = fake.url(f"ratelimited.every=1000.quota_after=3.then=picky.key={key}", CHAT)
    folder = make_photos(tmp_path / "照片", [(64, 64)] * 6)  # square: the gateway's 4:3 results do not pair
    fill_profile(page, url, key, concurrency=1)
    save_settings(page)
    page.fill("[data-testid=path-input]", str(folder))
    page.click("#scan")
    page.wait_for_function("document.querySelector('#scan-output')?.textContent.includes('6')", timeout=WAIT_MS)
    no_english(page, "#scan-output")
    run_id = start_run(page, "把天空改成紫色")
    final = idle(server, run_id)
    assert final["progress"]["done"] == 2 and final["progress"]["failed"] == 1, final["progress"]
    failed = next(t for t in final["tasks"] if t["status"] == "failed")
    assert failed["error_msg"]["code"].startswith("upstream."), failed
    wait_chip(page, "failed", 1)
    page.wait_for_function("!document.querySelector('[data-testid=cooling]').hidden", timeout=WAIT_MS)
    paused = no_english(page, "[data-testid=cooling]", verbatim)
    assert "暂停" in paused, paused
    card = cards(page, "failed").first
    error = card.locator(".error").inner_text()
    assert PICKY_REFUSAL in error and re.search(r"[\u4e00-\u9fff]", error), error
    no_english(page, "body", verbatim)
    no_english_hints(page, verbatim)
    page.screenshot(path=str(ARTIFACTS / "journey_chinese_failed_and_paused.png"))
    # A save that refuses pairs whose shapes differ (square sources, 4:3 results), then its report.
    chip(page, "done")
    page.click("[data-testid=select-all]")
    page.wait_for_function("document.querySelector('[data-testid=selected-count]').textContent === '已选 2 / 2'",
                           timeout=WAIT_MS)
    chip(page, "")
    page.click("#open-save")
    form = page.locator("#save-form")
    form.locator("[name=output_dir]").fill(str(tmp_path / "数据集"))
    form.locator("[name=layout]").select_option("aitoolkit_edit")
    form.locator("[name=name]").fill("sky")
    form.locator("[name=conform]").select_option("refuse")
    form.locator("[type=submit]").click()
    report = page.locator("[data-testid=save-report]")
    report.wait_for(state="visible")
    page.wait_for_function("document.querySelector('[data-testid=save-report]').textContent.trim().length > 0")
    page.wait_for_function("document.querySelector('[data-testid=save-report] .report-counts')"
                           "?.textContent.includes('拒绝 2')", timeout=WAIT_MS)
    text = no_english(page, "[data-testid=save-report]")
    assert "photo01" in text and "photo02" in text, text
    no_english(page, "#save-form")
    no_english_hints(page, verbatim)
    report.screenshot(path=str(ARTIFACTS / "journey_chinese_save_refused.png"))
    page.click("#save-close")
    # A table with bad rows, checked before anything runs.
    book = Workbook()
    for row in (["原图", "提示词", "数量", "文件名"], [str(tmp_path / "照片" / "不存在.png"), "把天空改成紫色", 1, ""],
                ["", "", 1, ""], ["", "一只狐狸", 101, ""]):
        book.active.append(row)
    book.save(tmp_path / "坏表格.xlsx")
    choose_mode(page, "table")
    page.fill("[data-testid=table-path]", str(tmp_path / "坏表格.xlsx"))
    page.click("[data-testid=table-check]")
    page.wait_for_function("(() => { const o = document.querySelector('[data-testid=table-output]');"
                           " return o && !o.hidden && o.textContent.includes('4'); })()", timeout=WAIT_MS)
    rows = no_english(page, "[data-testid=table-output]")
    assert "不存在.png" in rows, rows
    click_start(page, 400)
    # The refusal's toast comes after the answer (an earlier error toast may still be there).
    page.locator(".toast-error[data-route='POST /api/runs']").wait_for(timeout=WAIT_MS)
    no_english(page, ".toast-error")
    no_english_hints(page, verbatim)
    page.screenshot(path=str(ARTIFACTS / "journey_chinese_bad_table.png"))
    assert_no_crash_text(page)
    # Back to English: the same failure and pause in the server's own words.
    page.click("[data-testid=lang-switch]")
    page.wait_for_function("document.documentElement.lang === 'en'")
    error = cards(page, "failed").first.locator(".error").inner_text()
    assert error == f"HTTP 200 · no image in the answer; the API said: {PICKY_REFUSAL}", error
    assert page.inner_text("[data-testid=cooling]").startswith("Paused — 429 from the gateway"), \
        page.inner_text("[data-testid=cooling]")
    rows = page.inner_text("[data-testid=table-output]")
    assert "Row 2: source image not found" in rows and "Row 3: empty prompt" in rows, rows


def test_chinese_every_panel_dialog_and_mode_of_the_page_says_nothing_in_english(page, server, fake, tmp_path):
    page.click("[data-testid=lang-switch]")
    page.wait_for_function("document.documentElement.lang === 'zh-CN'")
    fill_profile(page, fake.url("g3_stream_dataurl", CHAT), "sk-live-Zh000002")
    save_settings(page)
    open_advanced(page)
    page.locator("[data-testid=key-pool] > summary").click()
    page.click("[data-testid=key-pool-add]")
    page.locator(".pool-row [data-field=api_key]").last.fill("sk-live-Zh000003")
    listed = test_connection(page)
    assert "gpt-image-1" in listed, listed
    no_english(page, "body")
    no_english_hints(page)
    for mode in ("generate", "table", "edit"):
        choose_mode(page, mode)
        if mode == "generate":
            page.click("[data-testid=variable-add]")
        no_english(page, "#run-panel")
        no_english_hints(page)
    folder = make_photos(tmp_path / "照片", [(64, 48)] * 3)
    page.fill("[data-testid=path-input]", str(folder))
    page.click("#scan")
    page.wait_for_function("document.querySelector('#scan-output')?.textContent.includes('3')", timeout=WAIT_MS)
    run_id = start_run(page, "把天空改成紫色")
    wait_all_done(page, server, run_id, 3)
    no_english(page, "body")
    page.locator("[data-testid=task-card]").first.locator("[data-testid=result-image]").first.click()
    page.locator("[data-testid=viewer]").wait_for(state="visible")
    no_english(page, "[data-testid=viewer]")
    no_english_hints(page)
    page.keyboard.press("Escape")
    page.locator("[data-testid=viewer]").wait_for(state="hidden")
    for opener, dialog in (("compare-open", "compare-dialog"), ("captions-replace", "replace-dialog"),
                           ("captions-generate", "caption-dialog")):
        page.click(f"[data-testid={opener}]")
        page.locator(f"[data-testid={dialog}]").wait_for(state="visible")
        no_english(page, f"[data-testid={dialog}]")
        no_english_hints(page)
        page.keyboard.press("Escape")
        page.locator(f"[data-testid={dialog}]").wait_for(state="hidden")
    cards(page).first.locator("[data-action=debug]").click()
    page.locator("#debug-drawer").wait_for(state="visible")
    no_english(page, "#debug-drawer header")  # the log itself is the calls' trace, as sent and received
    page.click("#debug-close")
    page.click("#open-save")
    layouts = page.locator("#save-form [name=layout] option").evaluate_all("(options) => options.map((o) => o.value)")
    for layout in layouts:  # every layout's fields, notes and hints
        page.locator("#save-form [name=layout]").select_option(layout)
        no_english(page, "#save-drawer")
        no_english_hints(page)
    page.screenshot(path=str(ARTIFACTS / "journey_chinese_save_drawer.png"))
    page.click("#save-close")
    assert_no_crash_text(page)
