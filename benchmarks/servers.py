"""The servers the load-generator benchmarks run against, each in a process of its own.

The cheapest echo at hand makes the load generator rather than the server the
limit: a C echo on libwebsockets (compiled on the fly when ``cc`` and
libwebsockets-dev are installed), else a picows echo (Cython), else websockets.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path
from typing import Any

from picows import WSFrame, WSListener, WSMsgType, WSTransport, ws_create_server
from websockets.asyncio.server import ServerConnection, serve

import nbstream


async def _echo(ws: ServerConnection) -> None:
    async for frame in ws:
        await ws.send(frame)


LWS_ECHO_C = r"""
#include <libwebsockets.h>
#include <stdlib.h>
#include <string.h>
#define MAX_FRAME 65536
struct session { size_t len; unsigned char buf[LWS_PRE + MAX_FRAME]; };

static int echo(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                size_t len) {
    struct session *s = user;
    if (reason != LWS_CALLBACK_RECEIVE) return 0;
    if (s->len + len > MAX_FRAME) return -1;
    memcpy(s->buf + LWS_PRE + s->len, in, len);
    s->len += len;
    if (!lws_is_final_fragment(wsi)) return 0;
    int n = lws_write(wsi, s->buf + LWS_PRE, s->len,
                      lws_frame_is_binary(wsi) ? LWS_WRITE_BINARY : LWS_WRITE_TEXT);
    s->len = 0;
    return n < 0 ? -1 : 0;
}

static struct lws_protocols protocols[] = {
    {"echo", echo, sizeof(struct session), MAX_FRAME, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

int main(int argc, char **argv) {
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof info);
    info.port = atoi(argv[1]);
    info.iface = "127.0.0.1";
    info.protocols = protocols;
    lws_set_log_level(LLL_ERR, NULL);
    struct lws_context *context = lws_create_context(&info);
    if (!context) return 1;
    while (lws_service(context, 0) >= 0) {}
    return 0;
}
"""
"""An echo server in C on libwebsockets: the cheapest server at hand, so that the load
generator rather than the server is the limit (``apt-get install libwebsockets-dev``)."""


def build_c_echo() -> Path | None:
    """Compile :data:`LWS_ECHO_C` into a temporary directory; None without cc/libwebsockets."""
    try:
        flags = subprocess.run(["pkg-config", "--cflags", "--libs", "libwebsockets"],
                               capture_output=True, text=True, check=True).stdout.split()
        binary = Path(tempfile.mkdtemp(prefix="nbstream-bench-")) / "lws_echo"
        source = binary.with_suffix(".c")
        source.write_text(LWS_ECHO_C)
        subprocess.run(["cc", "-O2", "-o", str(binary), str(source), *flags],
                       capture_output=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return binary


class _PicowsEcho(WSListener):
    """Echoes every frame back as it came (fragments included)."""

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type == WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code())
            transport.disconnect()
        elif frame.msg_type in (WSMsgType.TEXT, WSMsgType.BINARY, WSMsgType.CONTINUATION):
            transport.send(frame.msg_type, frame.get_payload_as_bytes(), frame.fin)


async def _serve(kind: str, ports: Any) -> None:
    if kind == "picows":
        picows_server = await ws_create_server(lambda request: _PicowsEcho(), "127.0.0.1", 0)
        url = f"ws://127.0.0.1:{picows_server.sockets[0].getsockname()[1]}/"
    elif kind == "raw":
        ws_server = await serve(_echo, "127.0.0.1", 0, compression=None, max_queue=None)
        url = f"ws://127.0.0.1:{ws_server.sockets[0].getsockname()[1]}/"
    else:
        url = (await nbstream.aserve("echo", max_connections=None)).url
    ports.put(url)
    await asyncio.Event().wait()


def _server_main(kind: str, ports: Any) -> None:
    asyncio.run(_serve(kind, ports))


@dataclass
class ServerProcess:
    """A server in its own process: its URL and CPU time so far."""

    process: Any
    url: str
    pid: int

    @classmethod
    def start(cls, kind: str) -> ServerProcess:
        """``raw`` (websockets), ``nbstream`` (its echo handler), ``picows`` (an echo in
        Cython, the cheapest after the C one), in a spawned process."""
        context = multiprocessing.get_context("spawn")
        ports = context.Queue()
        process = context.Process(target=_server_main, args=(kind, ports), daemon=True)
        process.start()
        assert process.pid is not None
        return cls(process, ports.get(timeout=60), process.pid)

    @classmethod
    def start_binary(cls, binary: Path) -> ServerProcess:
        """A compiled server taking its port as its only argument."""
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        process = subprocess.Popen([str(binary), str(port)])
        url = f"ws://127.0.0.1:{port}/"
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    process.kill()
                    raise
                time.sleep(0.05)
        return cls(process, url, process.pid)

    def cpu_seconds(self) -> float:
        """User + system CPU seconds of the server process (Linux /proc)."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self.process.terminate()
        if isinstance(self.process, subprocess.Popen):
            self.process.wait(5)
        else:
            self.process.join(5)


def fastest_echo() -> tuple[ServerProcess, str]:
    """The cheapest echo server at hand, started, and its description."""
    binary = build_c_echo()
    if binary is not None:
        return ServerProcess.start_binary(binary), "libwebsockets (C) echo"
    if find_spec("picows") is not None:
        return ServerProcess.start("picows"), "picows echo (no cc/libwebsockets-dev)"
    return ServerProcess.start("raw"), "websockets echo (no cc/libwebsockets, no picows)"
