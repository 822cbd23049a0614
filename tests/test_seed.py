"""The seed document's two WebSocket tests, unchanged in meaning, with a real client.

The seed used FastAPI's TestClient against ``/ws/test-session``; here a plain
websockets client talks to a real nbstream server on 127.0.0.1.
"""

import json

from websockets.asyncio.client import connect

from tests.conftest import ServerFactory, recv_json, recv_until_end


async def test_websocket_connection(start_server: ServerFactory) -> None:
    server = await start_server("agent")
    async with connect(f"{server.url}/test-session") as websocket:
        await websocket.send(json.dumps({"type": "chat", "content": "テスト"}))
        responses = await recv_until_end(websocket)
        assert len(responses) > 0
        assert any(r["type"] == "content" for r in responses)


async def test_error_handling(start_server: ServerFactory) -> None:
    server = await start_server("agent")
    async with connect(f"{server.url}/test-session") as websocket:
        await websocket.send(json.dumps({"invalid": "message"}))
        data = await recv_json(websocket)
        assert data["type"] == "error"
        assert data["data"]["code"] == "INVALID_MESSAGE"
