"""`python -m console.upstream`, run as a real process against the fake gateway."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

from testkit.images import JPEG

ROOT = Path(__file__).resolve().parent.parent


def run(args: list[str], **env: str) -> tuple[int, dict, str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("ALLOW_PRIVATE")}
    environ.update(env)
    done = subprocess.run([sys.executable, "-m", "console.upstream", *args], cwd=ROOT, env=environ,
                          capture_output=True, text=True, timeout=60)
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1, done.stdout + done.stderr
    return done.returncode, json.loads(lines[0]), done.stderr


def test_one_call_writes_every_image(fake, tmp_path):
    source = tmp_path / "cat.jpg"
    source.write_bytes(JPEG)
    code, report, _ = run(["--api-url", fake.api_base("g3_stream_dataurl"), "--image", str(source),
                           "--prompt", "make it blue", "--out", str(tmp_path / "out")], ALLOW_PRIVATE_API_URL="1")
    assert code == 0 and report["ok"] is True and report["error"] is None
    assert report["http_status"] == 200 and report["attempts"] == 1
    written = sorted(Path(p).read_bytes() for p in report["images"])
    assert written == sorted(fake.expected("g3_stream_dataurl"))
    assert all(Path(p).parent == (tmp_path / "out").resolve() for p in report["images"])


def test_private_api_refused_without_the_switch(fake, tmp_path):
    code, report, _ = run(["--api-url", fake.api_base("g3_stream_dataurl"), "--prompt", "p", "--out", str(tmp_path)])
    assert code == 1 and report["ok"] is False and "ALLOW_PRIVATE_API_URL" in report["error"]
    assert fake.requests == []


def test_error_report_with_status_and_attempts(fake, tmp_path):
    code, report, stderr = run(["--api-url", fake.api_base("err_401_g16"), "--prompt", "p", "--out", str(tmp_path),
                                "--api-key", "sk-cli-secret", "--mode", "chat_completions", "--no-stream", "--debug"],
                               ALLOW_PRIVATE_API_URL="1")
    assert code == 1 and report == {"ok": False, "images": [], "attempts": 1, "http_status": 401,
                                    "error": "HTTP 401: Invalid authentication token (authentication_error, invalid_api_key)"}
    assert "sk-cli-secret" not in stderr and "← HTTP 401" in stderr
    assert fake.requests[0].json["stream"] is False


def test_missing_image_file_is_a_clean_error(tmp_path):
    code, report, _ = run(["--api-url", "http://127.0.0.1:9/v1", "--image", str(tmp_path / "nope.png"),
                           "--prompt", "p", "--out", str(tmp_path)])
    assert code == 1 and "nope.png" in report["error"] and report["attempts"] == 0


def test_reference_images_are_sent_after_the_source_in_order(fake, tmp_path):
    from testkit.images import make

    paths = []
    for number, color in enumerate(((200, 0, 0), (0, 200, 0), (0, 0, 200))):
        path = tmp_path / f"input{number}.png"
        path.write_bytes(make("PNG", (40, 30), color))
        paths.append(path)
    code, report, _ = run(["--api-url", fake.api_base("g3_stream_dataurl"), "--image", str(paths[0]),
                           "--reference", str(paths[1]), "--reference", str(paths[2]), "--prompt", "put them together",
                           "--out", str(tmp_path / "out")], ALLOW_PRIVATE_API_URL="1")
    assert code == 0 and report["ok"] is True
    content = fake.requests[0].json["messages"][0]["content"]
    sent = [base64.b64decode(part["image_url"]["url"].split(",", 1)[1]) for part in content if part["type"] == "image_url"]
    assert sent == [path.read_bytes() for path in paths]


def test_more_references_than_the_mode_takes_is_a_clean_error_before_any_call(fake, tmp_path):
    source = tmp_path / "cat.jpg"
    source.write_bytes(JPEG)
    code, report, _ = run(["--api-url", fake.api_base("g3_stream_dataurl"), "--image", str(source),
                           *[arg for _ in range(8) for arg in ("--reference", str(source))],
                           "--prompt", "p", "--out", str(tmp_path / "out")], ALLOW_PRIVATE_API_URL="1")
    assert code == 1 and report["ok"] is False and "9" in report["error"] and report["attempts"] == 0
    assert fake.requests == []
