"""TurnView's browser side renders real turns in Debian's headless Chromium.

The widget's ES module is loaded into a blank page with a stand-in for the anywidget
model (a dict of traits and change handlers); the turns are folded from a real agent
served on a real socket. JupyterLab itself is exercised by the notebook tests.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import nbstream.strands
from nbstream.strands import TurnLog, aconnect
from tests.bidi.conftest import AgentServer, agent_on, read_until
from tests.browser.test_jupyterlab import CHROMIUM, CHROMIUM_ARGS
from tests.conftest import TIMEOUT

TURN_JS = Path(nbstream.strands.__file__).with_name("turn.js").read_text()
PAGE = """<!doctype html><div id="root"></div><script type="module">
const url = URL.createObjectURL(new Blob([%s], {type: "text/javascript"}));
const widget = (await import(url)).default;
const state = %s;
const handlers = {};
const model = {
  get: (key) => state[key], set: (key, value) => { state[key] = value; },
  save_changes() {}, on(name, f) { (handlers[name] ||= []).push(f); }, off() {},
};
window.update = (key, value) => {
  state[key] = value;
  (handlers[`change:${key}`] || []).forEach((f) => f());
};
widget.render({ model, el: document.getElementById("root") });
window.ready = true;
</script>"""

@pytest.mark.timeout(120)
async def test_turns_render_in_chromium(agent_server: AgentServer) -> None:
    from playwright.async_api import async_playwright

    server = await agent_server(lambda: agent_on(pace=0.02))
    log = TurnLog()
    server.events.subscribe(log.fold)
    agent = await aconnect(server.url, timeout=TIMEOUT)
    await agent.aturn("what is 6*7")
    await agent.asay("tell me a story")
    await read_until(agent, "bidi_text_delta")
    await agent.ainterrupt("stop!")
    await agent.aresponse()
    await agent.asend_audio(bytes(8_000))
    await agent.aresponse()
    await agent.aclose()
    turns = [turn.to_json() for turn in log.turns()]
    state = {"title": "agent turns", "turns_json": json.dumps(turns), "sessions": ["s1"],
             "session": "", "total_turns": len(turns)}

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            await page.set_content(PAGE % (json.dumps(TURN_JS), json.dumps(state)))
            await page.wait_for_function("window.ready === true", timeout=30_000)
            turn = page.locator(".nbs-turn")
            assert await turn.count() == 4
            assert await page.locator(".nbs-turns-count").inner_text() == "4 turns"
            first = turn.nth(0)
            assert await first.locator(".nbs-turn-user").inner_text() == "what is 6*7"
            assert "calculator" in await first.locator(".nbs-turn-tool").inner_text()
            assert "→ 42" in await first.locator(".nbs-turn-tool").inner_text()
            assert await first.locator(".nbs-turn-assistant").inner_text() == "6*7 is 42."
            assert await first.locator(".nbs-turn-audio rect").count() == 3
            assert "done" in await first.locator(".nbs-turn-head").inner_text()
            assert await turn.nth(1).locator(".nbs-turn-barge").count() == 1
            assert "🎤" not in await turn.nth(3).inner_text()  # the transcript replaced it
            assert "(0.25 s of audio)" in await turn.nth(3).inner_text()

            turns[-1]["state"] = "speaking"
            await page.evaluate("([k, v]) => window.update(k, v)",
                                ["turns_json", json.dumps(turns)])
            assert await page.locator(".nbs-turn-caret").count() == 1
            await page.evaluate("([k, v]) => window.update(k, v)", ["turns_json", "[]"])
            assert "No turns yet" in await page.locator(".nbs-turns-body").inner_text()
            assert errors == []
        finally:
            await browser.close()
