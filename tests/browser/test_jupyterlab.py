"""The quickstart in a real JupyterLab, in Debian's headless Chromium driven by Playwright.

Runs every cell but the last (the clean-up) one by one, as Shift-Enter does (JupyterLab's
"run all above" left cells unrun here), then, with the kernel idle, checks that
the FlowView is drawn and that its message count keeps growing (the heartbeat's
ping/pong); saves screenshots to ``test-artifacts/``; then runs the clean-up cell and
checks that it stopped everything without an error.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = ROOT / "notebooks" / "01-quickstart.ipynb"
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
TOKEN = "nbstream-browser-test"
SETTLE = 60_000
"""Milliseconds any wait in the page may take."""

NOTEBOOK = "window.jupyterapp.shell.currentWidget"
KERNEL_IDLE = (f"() => {{ const w = {NOTEBOOK}; const k = w && w.sessionContext && "
               "w.sessionContext.session && w.sessionContext.session.kernel; "
               "return !!k && k.status === 'idle'; }")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def jupyterlab(tmp_path: Path) -> Iterator[str]:
    """JupyterLab on 127.0.0.1 serving a copy of the quickstart; yields its base URL."""
    shutil.copy(QUICKSTART, tmp_path / QUICKSTART.name)
    settings = tmp_path / "settings"
    notification = settings / "@jupyterlab" / "apputils-extension"
    notification.mkdir(parents=True)
    (notification / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    port = free_port()
    log = (tmp_path / "jupyterlab.log").open("w")
    lab = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root",
         f"--ServerApp.token={TOKEN}", f"--port={port}", "--ip=127.0.0.1",
         f"--ServerApp.root_dir={tmp_path}", "--expose-app-in-browser",
         f"--LabApp.user_settings_dir={settings}",
         f"--LabApp.workspaces_dir={tmp_path / 'workspaces'}"],
        stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path,
        env={**os.environ, "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime")},
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{base}/api/status?token={TOKEN}", timeout=2):
                    break
            except OSError:
                if lab.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError((tmp_path / "jupyterlab.log").read_text()) from None
                time.sleep(0.2)
        yield base
    finally:
        lab.terminate()
        try:
            lab.wait(15)
        except subprocess.TimeoutExpired:
            lab.kill()
            lab.wait(5)
        log.close()


def run_cell(page: Any, index: int) -> None:
    """Select cell ``index`` and run it; returns once its execution has finished."""
    page.evaluate(f"async () => {{ {NOTEBOOK}.content.activeCellIndex = {index}; "
                  "await window.jupyterapp.commands.execute('notebook:run-cell'); }")


def count(page: Any) -> int:
    """The FlowView's message total as the browser shows it."""
    text = page.locator(".nbs-flow .nbs-total").inner_text()
    return int(text.replace(",", ""))


@pytest.mark.timeout(240)
def test_quickstart_flowview_lives_in_jupyterlab(jupyterlab: str) -> None:
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), "install Debian's chromium: apt-get install -y chromium"
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(SETTLE)
            page.goto(f"{jupyterlab}/lab/tree/{QUICKSTART.name}?reset&token={TOKEN}")
            page.wait_for_function(KERNEL_IDLE, timeout=SETTLE)
            cells = page.evaluate(f"{NOTEBOOK}.content.widgets.length")
            for index in range(cells - 1):  # every cell but the clean-up, as Shift-Enter does
                run_cell(page, index)
            page.wait_for_function(KERNEL_IDLE, timeout=SETTLE)

            flow = page.locator(".nbs-flow")
            flow.wait_for(state="visible")
            assert page.locator(".nbs-flow .nbs-row").count() > 10
            assert page.locator(".nbs-lanes .nbs-arrow").count() > 0  # two sessions: lanes
            assert page.locator(".widget-button", has_text="Broadcast").count() == 1

            first = count(page)
            page.wait_for_timeout(4_500)  # the heartbeat pings every 2 s
            assert page.evaluate(KERNEL_IDLE)
            second = count(page)
            assert second > first > 0, (first, second)

            flow.scroll_into_view_if_needed()
            page.locator(".nbs-row", has_text="tool_use").first.click()  # show its JSON
            page.locator(".nbs-detail").wait_for(state="visible")
            flow.screenshot(path=str(ARTIFACTS / "quickstart-flowview.png"))
            page.screenshot(path=str(ARTIFACTS / "quickstart-page.png"))

            run_cell(page, cells - 1)
            page.wait_for_function(KERNEL_IDLE, timeout=SETTLE)
            outputs = page.locator(".jp-Cell").last.locator(".jp-OutputArea-output")
            assert "stopped in" in outputs.inner_text()
            assert page.locator('[data-mime-type="application/vnd.jupyter.stderr"]').count() == 0
        finally:
            browser.close()
