"""Drive the page in headless Chromium (Debian's): open a tab, fill the profile, start a run, wait, take a picture.

Shared by the browser tests (`test_page.py`, `test_save_page.py`); the `page` fixture is in conftest.py.
"""

from __future__ import annotations

from pathlib import Path

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
CHAT = "/v1/chat/completions"


def open_tab(browser, url: str, viewport: dict | None = None, locale: str = "en-US"):
    """Open the page in a new context; record console errors on `tab.console_errors`."""
    # bypass_csp: Playwright's string predicates run through eval, which the page's policy forbids
    context = browser.new_context(viewport=viewport or {"width": 1400, "height": 900}, locale=locale, bypass_csp=True)
    tab = context.new_page()
    errors: list[str] = []
    tab.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    tab.on("pageerror", lambda error: errors.append(str(error)))
    tab.accept_dialog = lambda dialog: dialog.accept()
    tab.on("dialog", tab.accept_dialog)
    tab.goto(url)
    tab.wait_for_selector("body[data-ready=true]", timeout=10_000)  # a broken page fails fast
    tab.console_errors = errors  # a test that provokes an error answer removes what it expects
    return tab


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
