"""Share the live fake upstream gateway between tests."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from testkit.fake_upstream import FakeUpstream


@pytest.fixture(scope="session")
def fake_upstream_server() -> Iterator[FakeUpstream]:
    """Start one fake upstream for the whole session and close it at the end."""
    server = FakeUpstream()
    yield server
    server.close()


@pytest.fixture
def fake(fake_upstream_server: FakeUpstream) -> FakeUpstream:
    """Return the session's fake upstream with its recorded requests and counters cleared."""
    fake_upstream_server.reset()
    return fake_upstream_server


CHROMIUM = "/usr/bin/chromium"  # Debian's; ./test.sh installs it


@pytest.fixture(scope="module")
def browser():
    """Headless Debian Chromium through Playwright, one per test module."""
    playwright_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: ./test.sh installs Debian's chromium")
    with playwright_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run"])
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, server):
    """A tab on the server's page (closed at the end); the test fails on any console error it did not expect."""
    from tests.browser import open_tab

    tab = open_tab(browser, server.url)
    yield tab
    tab.context.close()
    assert tab.console_errors == [], tab.console_errors


@pytest.fixture
def server(tmp_path):
    """The console as a real process on a fresh data dir (stopped at the end)."""
    from testkit.server_process import ServerProcess

    process = ServerProcess(tmp_path / "data")
    yield process
    process.stop()


@pytest.fixture
def app(tmp_path):
    """The Flask app on a temp data dir, its engine running (closed at the end)."""
    from console.settings import resolve
    from console.web import create_app

    application = create_app(settings=resolve({"APP_DATA_DIR": str(tmp_path / "data")}))
    yield application
    application.extensions["console.engine"].close()


@pytest.fixture
def parts(tmp_path):
    """A store, cache, settings and config store on a fresh data dir: what an Engine is made of."""
    from console.cache import ImageCache
    from console.config import ConfigStore
    from console.settings import resolve
    from console.store import Store

    folder = tmp_path / "data"
    folder.mkdir()
    settings = resolve({"APP_DATA_DIR": str(folder)})
    return Store(folder / "console.db"), ImageCache(folder, 168, 1 << 30), settings, ConfigStore(folder)


@pytest.fixture
def engine(parts):
    """An Engine without Flask, started (closed at the end)."""
    from console.engine import Engine

    engine = Engine(*parts)
    engine.start()
    yield engine
    engine.close()


@pytest.fixture
def client(app):
    """A test client of `app`."""
    return app.test_client()


@pytest.fixture(autouse=True)
def isolated_data_dir(tmp_path, monkeypatch) -> None:
    """Point the data dir at a temp folder: tests never touch the user's files."""
    monkeypatch.setenv("APP_DATA_DIR", str(tmp_path / "data"))
    for name in ("ALLOW_PRIVATE_API_URL", "ALLOW_PRIVATE_DOWNLOAD_URL", "API_URL_HOST_ALLOWLIST",
                 "DOWNLOAD_URL_HOST_ALLOWLIST", "HOST", "PORT"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(autouse=True)
def isolated_home(tmp_path, monkeypatch) -> None:
    """Point HOME at a temp folder: the legacy presets import never reads the user's files."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)


@pytest.fixture(autouse=True)
def close_engines(monkeypatch) -> Iterator[None]:
    """Close every engine a test started (create_app starts one), so no loop thread outlives its test."""
    from console.engine import Engine

    started: list[Engine] = []
    original = Engine.start

    def start(self: Engine) -> None:
        started.append(self)
        original(self)

    monkeypatch.setattr(Engine, "start", start)
    yield
    for engine in started:
        engine.close()
