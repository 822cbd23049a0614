"""Plain HTTP answers on the server's port: ``/health``, ``/metrics`` and refusals."""

from __future__ import annotations

import json
from typing import Any

from websockets.asyncio.server import ServerConnection
from websockets.http11 import Response


def respond(ws: ServerConnection, status: int, body: str,
            content_type: str = "text/plain; charset=utf-8") -> Response:
    """A response with ``body`` and its content type."""
    response = ws.respond(status, body)
    del response.headers["Content-Type"]
    response.headers["Content-Type"] = content_type
    return response


def respond_json(ws: ServerConnection, status: int, body: dict[str, Any]) -> Response:
    """A JSON response (``/health``)."""
    return respond(ws, status, json.dumps(body) + "\n", "application/json")
