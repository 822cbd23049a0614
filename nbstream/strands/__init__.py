"""nbstream for Strands bidirectional agents (``pip install nbstream[strands]``).

Serve a ``strands.bidi.BidiAgent`` over nbstream's WebSocket, watch its turns, and
try it offline with a scripted model::

    from strands import tool
    from strands.bidi import BidiAgent
    from nbstream.strands import ScriptedBidiModel, WebSocketInput, WebSocketOutput

    model = ScriptedBidiModel(["Hello! Ask me a sum."], pace=0.05)
    agent = BidiAgent(model=model, tools=[...])
    await agent.run(inputs=[WebSocketInput(conversation)],
                    outputs=[WebSocketOutput(conversation)])

Importing ``nbstream`` never imports the Strands SDK (about 1.5 s); this package loads
each part on first use. See docs/strands.md.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from nbstream.strands.model import ScriptedBidiModel, ScriptedModelError
    from nbstream.strands.script import Script, ToolCall, Turn
    from nbstream.strands.streams import Conversation, WebSocketInput, WebSocketOutput
    from nbstream.strands.turns import TurnLog, TurnRecord
    from nbstream.strands.view import TurnView
    from nbstream.strands.wire import InputLimits, Outgoing, decode_input, encode_event

_WHERE = {
    "ScriptedBidiModel": "model",
    "ScriptedModelError": "model",
    "Script": "script",
    "ToolCall": "script",
    "Turn": "script",
    "Conversation": "streams",
    "WebSocketInput": "streams",
    "WebSocketOutput": "streams",
    "TurnLog": "turns",
    "TurnRecord": "turns",
    "TurnView": "view",
    "InputLimits": "wire",
    "Outgoing": "wire",
    "decode_input": "wire",
    "encode_event": "wire",
}

__all__ = [
    "Conversation",
    "InputLimits",
    "Outgoing",
    "Script",
    "ScriptedBidiModel",
    "ScriptedModelError",
    "ToolCall",
    "Turn",
    "TurnLog",
    "TurnRecord",
    "TurnView",
    "WebSocketInput",
    "WebSocketOutput",
    "decode_input",
    "encode_event",
]


def __getattr__(name: str) -> object:
    """Import the part that defines ``name`` on first use."""
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'nbstream.strands' has no attribute {name!r}")
    try:
        loaded = import_module(f"nbstream.strands.{module}")
    except ModuleNotFoundError as exc:
        if exc.name is not None and exc.name.split(".")[0] == "strands":
            raise ModuleNotFoundError(
                "nbstream.strands needs the Strands Agents SDK: "
                "pip install 'nbstream[strands]'", name=exc.name) from exc
        raise
    return getattr(loaded, name)
