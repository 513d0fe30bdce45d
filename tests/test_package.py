"""The console as a Python package: pyproject.toml lists every package, and `pip install` gives a command that serves the page.

The wheel test builds the wheel from a copy of the checkout, installs it into a fresh virtual
environment (its dependencies from the package index, as a user's `pip install .` or `pipx
install .` would) and starts the installed `image-batch-console` outside the checkout.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parent.parent
INSTALL_TIMEOUT_S = 600


def _listed_packages() -> set[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    return set(config["tool"]["setuptools"]["packages"])


def test_pyproject_lists_every_package_under_console():
    on_disk = {".".join(init.parent.relative_to(ROOT).parts) for init in (ROOT / "console").rglob("__init__.py")}
    assert on_disk | {"console.static"} == _listed_packages()


def test_the_version_has_one_home():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert "version" in config["project"]["dynamic"] and "version" not in config["project"]
    assert config["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "console.__version__"}


@pytest.mark.slow
@pytest.mark.timeout(INSTALL_TIMEOUT_S * 2)
def test_pip_install_gives_a_command_that_serves_the_page(tmp_path):
    source = tmp_path / "checkout"
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "requirements.txt"):
        shutil.copy2(ROOT / name, source / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(ROOT / "console", source / "console", ignore=ignore)
    shutil.copytree(ROOT / "static", source / "static", ignore=ignore)

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=INSTALL_TIMEOUT_S)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "install", str(source)], check=True, timeout=INSTALL_TIMEOUT_S)

    command = venv / "bin" / "image-batch-console"
    version = subprocess.run([str(command), "--version"], capture_output=True, text=True, check=True, timeout=60)
    assert version.stdout.startswith("image-batch-console ")

    elsewhere = tmp_path / "elsewhere"  # not the checkout: the page must come from the installed package
    elsewhere.mkdir()
    server = subprocess.Popen([str(command), "--port", "0", "--no-browser", "--status-ui", "none",
                               "--data-dir", str(tmp_path / "data")],
                              cwd=elsewhere, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = server.stdout.readline()
        match = re.search(r"on (http://127\.0\.0\.1:\d+/)", line)
        assert match, f"the installed command did not start: {line!r} {server.stderr.read() if server.poll() else ''}"
        with httpx.Client(base_url=match.group(1), timeout=30) as http:
            page = http.get("/")
            assert page.status_code == 200 and 'data-testid="prompt-input"' in page.text
            script = http.get("/static/js/main.js")
            assert script.status_code == 200 and "import" in script.text
            assert http.get("/api/settings").status_code == 200
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert server.returncode == 0
