"""Figures of the review page in headless Chromium: a 10,000-task run."""

from __future__ import annotations

import time
from pathlib import Path

from bench.harness import CHAT, Row, Servers, Workspace, make_sources, median
from testkit.fake_upstream import FakeUpstream

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]


def page_figures(cfg) -> list[Row]:
    """Time to an interactive page with every task loaded, and from a status change to the screen."""
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        raise RuntimeError(f"{CHROMIUM} is missing (./test.sh installs Debian's chromium)")
    tasks = 2000 if cfg.quick else 10_000
    with Workspace() as root, FakeUpstream() as fake, Servers(root) as servers, sync_playwright() as p:
        server = servers.start()
        run_id = server.start_run(make_sources(root / "src", tasks), fake.url("stall", CHAT), 1)
        server.wait_progress(run_id, lambda progress: progress["running"] == 1, timeout=30)
        server.post(f"/api/runs/{run_id}/stop")
        first = server.get(f"/api/runs/{run_id}/tasks", params={"limit": 1}).json()["tasks"][0]["id"]
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        loads, changes = [], []
        for _ in range(cfg.repeat + 2):
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            start = time.perf_counter()
            page.goto(server.url)
            page.wait_for_selector("body[data-ready=true]", timeout=30_000)
            page.wait_for_selector("[data-testid=task-card]")
            loads.append(time.perf_counter() - start)
            start = time.perf_counter()
            server.post(f"/api/tasks/{first}/retry", {"keep_results": True})
            page.wait_for_selector(f"[data-task-id='{first}'][data-status=running]", timeout=10_000)
            changes.append(time.perf_counter() - start)
            server.post(f"/api/runs/{run_id}/stop")
            page.wait_for_selector(f"[data-task-id='{first}'][data-status=stopped]", timeout=10_000)
            page.close()
        browser.close()
    load, change = median(loads), median(changes)
    return [
        Row(f"page: {tasks}-task run, load to interactive (all tasks loaded)", f"{load * 1000:.0f} ms", "< 2 s",
            load < 2, "runs: " + ", ".join(f"{v:.2f}" for v in loads) + " s; headless Chromium, fresh tab"),
        Row("page: status change on the server → on screen", f"{change * 1000:.0f} ms", "< 1.5 s", change < 1.5,
            "runs: " + ", ".join(f"{v:.2f}" for v in changes) + " s; the page polls ?since= every second"),
    ]
