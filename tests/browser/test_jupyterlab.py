"""Every notebook in a real JupyterLab, in Debian's headless Chromium driven by Playwright.

One JupyterLab server and one browser page serve all notebooks (about 15 s each). For
each notebook: run every cell but the clean-up one by one, as Shift-Enter does
(JupyterLab's "run all" left cells unrun here); then, with the kernel idle, check what
a student would see: no stderr or traceback, no broken image, the plot drawn, a
recording played again; click a FlowView row and measure the rendered contrast of what
the row shows (text and type colours against the actual background), in the light and
in the dark theme; then run the clean-up and check it stopped everything. Screenshots
go to ``test-artifacts/``.
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

from tests.notebooks.test_notebooks import WORKSHOP

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
TOKEN = "nbstream-browser-test"
SETTLE = 60_000
"""Milliseconds any wait in the page may take."""
AA = 4.5
"""WCAG AA: the least contrast of normal-size text against its background."""
THEMES = {"light": "JupyterLab Light", "dark": "JupyterLab Dark"}

APP = "window.jupyterapp"
NOTEBOOK = f"{APP}.shell.currentWidget"
KERNEL_IDLE = (f"() => {{ const w = {NOTEBOOK}; const k = w && w.sessionContext && "
               "w.sessionContext.session && w.sessionContext.session.kernel; "
               "return !!k && k.status === 'idle'; }")

CONTRAST = """(root) => {
  // The contrast ratio (WCAG 2) of each text element under root against what is
  // really behind it: the background colours of its ancestors, blended.
  const parse = (c) => {
    const p = c.match(/[\\d.]+/g).map(Number);
    return [p[0], p[1], p[2], p.length > 3 ? p[3] : 1];
  };
  const over = (top, under) => [0, 1, 2].map((i) => top[i] * top[3] + under[i] * (1 - top[3]));
  const background = (el) => {
    const layers = [];
    for (let e = el; e; e = e.parentElement) {
      const c = parse(getComputedStyle(e).backgroundColor);
      if (c[3] > 0) layers.push(c);
      if (c[3] >= 1) break;
    }
    let colour = [255, 255, 255];
    for (const layer of layers.reverse()) colour = over(layer, colour);
    return colour;
  };
  const luminance = (rgb) => {
    const [r, g, b] = rgb.map((v) => {
      const s = v / 255;
      return s <= 0.03928 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4;
    });
    return 0.2126 * r + 0.7152 * g + 0.0722 * b;
  };
  const texts = [...root.querySelectorAll("td, span, b, text, div.nbs-note")]
    .filter((e) => e.childNodes.length && [...e.childNodes].some(
      (n) => n.nodeType === 3 && n.textContent.trim()));
  return texts.map((e) => {
    const style = getComputedStyle(e);
    const ink = parse(e instanceof SVGElement ? style.fill : style.color);
    const behind = background(e instanceof SVGElement ? e.closest("div") : e);
    const [a, b] = [luminance(over(ink, behind)), luminance(behind)];
    const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
    return [e.textContent.trim().slice(0, 30), e.className.baseVal ?? e.className,
            Math.round(ratio * 100) / 100];
  });
}"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def jupyterlab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """JupyterLab on 127.0.0.1 serving a copy of notebooks/; yields its base URL."""
    root = tmp_path_factory.mktemp("lab")
    shutil.copytree(NOTEBOOKS, root / "notebooks")
    settings = root / "settings"
    notification = settings / "@jupyterlab" / "apputils-extension"
    notification.mkdir(parents=True)
    (notification / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    port = free_port()
    log = (root / "jupyterlab.log").open("w")
    lab = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root",
         f"--ServerApp.token={TOKEN}", f"--port={port}", "--ip=127.0.0.1",
         f"--ServerApp.root_dir={root}", "--expose-app-in-browser",
         f"--LabApp.user_settings_dir={settings}",
         f"--LabApp.workspaces_dir={root / 'workspaces'}"],
        stdout=log, stderr=subprocess.STDOUT, cwd=root,
        env={**os.environ, "JUPYTER_RUNTIME_DIR": str(root / "runtime")},
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
                    raise RuntimeError((root / "jupyterlab.log").read_text()) from None
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


@pytest.fixture(scope="module")
def page(jupyterlab: str) -> Iterator[Any]:
    """One Chromium page with JupyterLab loaded; notebooks open in it one after another."""
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), "install Debian's chromium: apt-get install -y chromium"
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(SETTLE)
            page.goto(f"{jupyterlab}/lab?reset&token={TOKEN}")
            page.wait_for_function(f"() => !!{APP} && {APP}.started !== undefined")
            page.evaluate(f"async () => {{ await {APP}.started; await {APP}.restored; }}")
            yield page
        finally:
            browser.close()


def run_cell(page: Any, index: int) -> None:
    """Select cell ``index`` and run it; returns once its execution has finished."""
    page.evaluate(f"async () => {{ {NOTEBOOK}.content.activeCellIndex = {index}; "
                  "await window.jupyterapp.commands.execute('notebook:run-cell'); }")


def set_theme(page: Any, theme: str) -> None:
    page.evaluate(f"async () => {{ await {APP}.commands.execute('apputils:change-theme', "
                  f"{{theme: {json.dumps(THEMES[theme])}}}); }}")
    light = "true" if theme == "light" else "false"
    page.wait_for_function(f"() => document.body.dataset.jpThemeLight === '{light}'")
    page.wait_for_timeout(500)  # the theme's stylesheet applies


def outputs_of(page: Any, index: int) -> Any:
    return page.locator(".jp-Notebook .jp-Cell").nth(index).locator(".jp-OutputArea-output")


def flow_total(page: Any) -> int:
    return int(page.locator(".nbs-flow .nbs-total").first.inner_text().replace(",", ""))


def low_contrast(page: Any, selector: str) -> list[Any]:
    """Text under ``selector`` below 4.5:1 (``[text, class, ratio]`` each)."""
    found = page.locator(selector)
    assert found.count() > 0, f"nothing matches {selector}"
    measured = [m for i in range(found.count()) for m in found.nth(i).evaluate(CONTRAST)]
    assert measured, f"no text under {selector}"
    return [m for m in measured if m[2] < AA]


def check_flowview(page: Any, name: str) -> None:
    """Pause, click a row: the table must not move (it did, with follow on); every text
    in view reads at 4.5:1 or more."""
    flow = page.locator(".nbs-flow").first
    wrap = flow.locator(".nbs-table-wrap")
    flow.locator(".nbs-pause").click()  # as a reader does; rows stop being redrawn
    flow.locator(".nbs-pause", has_text="resume").wait_for()
    page.wait_for_timeout(300)
    rows = flow.locator("tr.nbs-row")
    assert rows.count() > 0
    row = rows.nth(0)  # the oldest: away from the bottom, where follow would scroll
    row.scroll_into_view_if_needed()
    before = wrap.evaluate("e => e.scrollTop")
    row.click()
    flow.locator("tr.nbs-selected").wait_for()
    flow.locator(".nbs-detail").wait_for(state="visible")
    page.wait_for_timeout(300)  # a refresh or two of the view
    assert wrap.evaluate("e => e.scrollTop") == before, "clicking a row moved the table"
    assert not flow.locator(".nbs-follow").is_checked(), "reading a row stops following"
    for theme in ("light", "dark"):
        set_theme(page, theme)
        flow.screenshot(path=str(ARTIFACTS / f"{name}-flowview-{theme}.png"))
        for part in (".nbs-flow tr.nbs-selected", ".nbs-flow tbody", ".nbs-flow .nbs-head",
                     ".nbs-flow .nbs-counts", ".nbs-flow .nbs-lane-wrap"):
            assert low_contrast(page, part) == [], (theme, part)
    set_theme(page, "light")


def check_load_test_plots(page: Any) -> None:
    """The figure of ``plot()`` is drawn; LoadTestView shows the plot for the theme."""
    plot = page.locator(".jp-Cell", has_text="over.plot(under").locator(".jp-OutputArea-output img")
    assert plot.count() == 1
    assert plot.evaluate("img => img.naturalWidth") > 500
    for theme in ("light", "dark"):
        set_theme(page, theme)
        shown = page.locator(f".nbs-plot-{theme}")
        hidden = page.locator(f".nbs-plot-{'dark' if theme == 'light' else 'light'}")
        assert shown.evaluate("img => img.naturalWidth > 0 && img.offsetParent !== null")
        assert hidden.evaluate("img => img.offsetParent === null")
        shown.screenshot(path=str(ARTIFACTS / f"loadtestview-plot-{theme}.png"))
    plot.screenshot(path=str(ARTIFACTS / "load-testing-plot.png"))
    set_theme(page, "light")


def check_replay(page: Any) -> None:
    """A finished recording's FlowView: the scrubber goes back in time, play draws the
    flow again at the chosen speed and stops at the end."""
    flows = page.locator(".nbs-flow")
    flow = next(flows.nth(i) for i in range(flows.count())
                if flows.nth(i).locator(".nbs-replay").is_visible())
    flow.scroll_into_view_if_needed()
    total = flow.locator(".nbs-total")
    everything = int(str(total.text_content()).replace(",", ""))
    assert everything > 0
    flow.locator(".nbs-scrub").fill("0")
    page.wait_for_function("([el, n]) => Number(el.textContent.replace(/,/g, '')) < n",
                           arg=[total.element_handle(), everything])
    assert flow.locator(".nbs-position").inner_text().startswith("0.00 /")
    flow.locator(".nbs-speed").select_option("4")
    flow.locator(".nbs-play").click()
    flow.locator(".nbs-play", has_text="stop").wait_for()
    flow.screenshot(path=str(ARTIFACTS / "10-record-and-replay-playing.png"))
    flow.locator(".nbs-play", has_text="play").wait_for()  # at the end it stops by itself
    page.wait_for_function("([el, n]) => Number(el.textContent.replace(/,/g, '')) === n",
                           arg=[total.element_handle(), everything])
    position, duration = flow.locator(".nbs-position").inner_text().split(" / ")
    assert position == duration.removesuffix(" s")


@pytest.mark.slow
@pytest.mark.timeout(180)
@pytest.mark.parametrize("name", WORKSHOP)
def test_notebook_reads_well_in_jupyterlab(page: Any, name: str) -> None:
    page.evaluate(f"async () => {{ await {APP}.commands.execute('docmanager:open', "
                  f"{{path: 'notebooks/{name}.ipynb'}}); }}")
    page.wait_for_function(f"() => {NOTEBOOK} && {NOTEBOOK}.context.path.endsWith('{name}.ipynb')")
    page.wait_for_function(KERNEL_IDLE)
    try:
        cells = page.evaluate(f"{NOTEBOOK}.content.widgets.length")
        for index in range(cells - 1):  # every cell but the clean-up, as Shift-Enter does
            run_cell(page, index)
        page.wait_for_function(KERNEL_IDLE)

        assert page.locator('[data-mime-type="application/vnd.jupyter.stderr"]').count() == 0
        broken = page.locator(".jp-OutputArea-output img").evaluate_all(
            "imgs => imgs.filter(i => i.offsetParent !== null && "
            "(!i.getAttribute('src') || (i.complete && i.naturalWidth === 0))).length")
        assert broken == 0, "a broken image shows"
        if name == "00-start-here":
            printed = "\n".join(page.locator(".jp-OutputArea-output").all_inner_texts())
            assert "✗" not in printed and printed.count("✓") == 5, printed
            assert page.locator(".nbs-flow tr.nbs-row").count() > 0
        if name == "01-quickstart":  # the heartbeat goes on while the kernel is idle
            first = flow_total(page)
            page.wait_for_timeout(4_500)  # the server pings every 2 s
            assert flow_total(page) > first > 0
            assert page.locator(".nbs-lanes .nbs-arrow").count() > 0  # two sessions: lanes
        if name == "06-load-testing":
            check_load_test_plots(page)
        if name == "10-record-and-replay":
            check_replay(page)
        if page.locator(".nbs-flow tr.nbs-row").count():
            check_flowview(page, name)
        page.screenshot(path=str(ARTIFACTS / f"{name}-page.png"))

        run_cell(page, cells - 1)
        page.wait_for_function(KERNEL_IDLE)
        report = outputs_of(page, cells - 1).inner_text()
        assert report.startswith("stopped "), report
        assert page.locator('[data-mime-type="application/vnd.jupyter.stderr"]').count() == 0
    finally:
        page.evaluate(f"async () => {{ const w = {NOTEBOOK}; await w.sessionContext.shutdown(); "
                      "w.context.model.dirty = false; w.dispose(); }")
