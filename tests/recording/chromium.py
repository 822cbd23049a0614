"""HAR files made by Chromium itself: Debian's chromium, driven by Playwright, opens a
page served from 127.0.0.1 (pages on about:blank may not reach loopback WebSockets)
whose script talks to a WebSocket server, and Playwright saves the context's HAR.

Also a script: ``python -m tests.recording.chromium OUT.har`` captures a chat with
nbstream's scripted agent (how notebooks/data/browser-chat.har was made).
"""

from __future__ import annotations

import http.server
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]

CHAT_PAGE = """<!doctype html><meta charset="utf-8"><title>chat</title><script>
// Two chats with nbstream's agent over the nbstream.v1 subprotocol, one binary frame
// (the agent answers it with an error), then a normal close.
const ws = new WebSocket(%(url)r, ["nbstream.v1"]);
ws.binaryType = "arraybuffer";
const questions = ["what is 6*7?", "hello"];
function ask() {
  const text = questions.shift();
  if (text === undefined) {
    ws.send(new Uint8Array([0, 1, 2, 254, 255]).buffer);
    return;
  }
  ws.send(JSON.stringify({type: "chat", data: {text}}));
}
ws.onmessage = (event) => {
  if (typeof event.data !== "string") return;
  const message = JSON.parse(event.data);
  if (message.type === "welcome" || message.type === "end") setTimeout(ask, 150);
  if (message.type === "error") { ws.close(1000, "done"); }
};
ws.onclose = () => { document.title = "done"; };
</script>"""
"""The page of :func:`capture_chat` (``%(url)r``: the WebSocket URL)."""


@contextmanager
def page_server(html: str) -> Iterator[str]:
    """Serve ``html`` at ``http://127.0.0.1:PORT/`` on a thread; yields the URL."""
    body = html.encode()

    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def capture(html: str, har: Path, timeout_ms: int = 30_000) -> Path:
    """Open ``html`` in Chromium, wait until its title is ``done``, save the HAR."""
    from playwright.sync_api import sync_playwright

    with page_server(html) as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(record_har_path=str(har))
            page = context.new_page()
            page.goto(url, timeout=timeout_ms)
            page.wait_for_function("document.title === 'done'", timeout=timeout_ms)
            context.close()  # writes the HAR
        finally:
            browser.close()
    return har


def capture_chat(ws_url: str, har: Path) -> Path:
    """Chromium chats twice with the agent at ``ws_url``; the HAR it saved."""
    return capture(CHAT_PAGE % {"url": ws_url}, har)


if __name__ == "__main__":
    import nbstream

    server = nbstream.serve("agent")
    try:
        print(capture_chat(server.url, Path(sys.argv[1])))
    finally:
        server.stop()
