"""The terminal gets one line per event; the traceback goes only to the log file in the data dir."""

from __future__ import annotations

import logging
import stat

import pytest

from console import logs
from console.panel import EventBuffer


@pytest.fixture
def restore_logging():
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    yield
    for handler in root.handlers:
        if handler not in saved[0]:
            handler.close()
    root.handlers[:], root.level = saved


def _crash() -> None:
    try:
        {}["missing"]
    except KeyError:
        logging.getLogger("console.engine").exception("task t1 crashed\nwhile reading")


def test_terminal_and_panel_lines_are_one_line_and_the_file_has_the_traceback(tmp_path, capsys, restore_logging):
    events = EventBuffer()
    path = logs.setup(tmp_path, [events], terminal=True)
    _crash()
    for handler in logging.getLogger().handlers:
        handler.flush()
    terminal = capsys.readouterr().err.strip().splitlines()
    assert len(terminal) == 1 and terminal[0].endswith("task t1 crashed while reading: KeyError: 'missing'")
    assert len(events.lines) == 1 and "\n" not in events.lines[0] and "KeyError" in events.lines[0]
    text = path.read_text(encoding="utf-8")
    assert "Traceback (most recent call last)" in text and 'in _crash' in text
    assert path == tmp_path / "logs" / "console.log"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_without_terminal_only_the_file_and_the_panel_get_records(tmp_path, capsys, restore_logging):
    events = EventBuffer()
    path = logs.setup(tmp_path, [events], terminal=False)
    logging.getLogger("console").info("imported %d preset(s)", 2)
    assert capsys.readouterr().err == ""
    assert events.lines[0].endswith("imported 2 preset(s)")
    for handler in logging.getLogger().handlers:
        handler.flush()
    assert "imported 2 preset(s)" in path.read_text(encoding="utf-8")


def test_a_failed_task_is_one_line_naming_the_source_and_the_reason(tmp_path, fake, caplog):
    from console.settings import resolve
    from console.web import create_app
    from tests.helpers import make_sources, start, wait_idle

    app = create_app(settings=resolve({"APP_DATA_DIR": str(tmp_path / "data")}))
    client = app.test_client()
    with caplog.at_level(logging.WARNING, logger="console.engine"):
        wait_idle(client, start(client, fake, make_sources(tmp_path / "src", 1), "err_401_g16"))
    lines = [r.getMessage() for r in caplog.records if r.name == "console.engine"]
    assert len(lines) == 1 and "img1.png failed: HTTP 401" in lines[0] and "Invalid authentication token" in lines[0]
    assert all(r.exc_info is None for r in caplog.records)
