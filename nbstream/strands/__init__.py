"""nbstream for Strands bidirectional agents (``pip install nbstream[strands]``).

Serve a ``strands.bidi.BidiAgent`` over nbstream's WebSocket, talk to it, watch its
turns, load-test it, and try it all offline with a scripted model::

    from strands.bidi import BidiAgent
    import nbstream.strands as ns

    server = ns.serve_agent(lambda: BidiAgent(
        model=ns.ScriptedBidiModel(["Hello! Ask me a sum."]), tools=[...]))
    agent = ns.connect(server.url)
    agent.turn("hi").transcript             # 'Hello! Ask me a sum.'

Importing ``nbstream`` never imports the Strands SDK (about 1.5 s); this package loads
each part on first use. See docs/strands.md.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from nbstream.strands.client import AgentClient, AgentEvents, aconnect, connect
    from nbstream.strands.model import ScriptedBidiModel, ScriptedModelError
    from nbstream.strands.received import AgentEvent, AgentTurn
    from nbstream.strands.scenario import ConversationFlow, conversation
    from nbstream.strands.script import Script, ToolCall, Turn
    from nbstream.strands.serving import (
        AgentSession,
        agent_handler,
        aserve_agent,
        serve_agent,
    )
    from nbstream.strands.streams import Conversation, WebSocketInput, WebSocketOutput
    from nbstream.strands.tools import calculator
    from nbstream.strands.turns import TurnLog, TurnRecord
    from nbstream.strands.view import TurnView
    from nbstream.strands.wire import (
        InputLimits,
        Outgoing,
        OutputConfig,
        decode_input,
        encode_event,
    )

_WHERE = {
    "AgentClient": "client",
    "AgentEvents": "client",
    "aconnect": "client",
    "connect": "client",
    "AgentEvent": "received",
    "AgentTurn": "received",
    "AgentSession": "serving",
    "agent_handler": "serving",
    "aserve_agent": "serving",
    "serve_agent": "serving",
    "ScriptedBidiModel": "model",
    "ScriptedModelError": "model",
    "ConversationFlow": "scenario",
    "conversation": "scenario",
    "Script": "script",
    "ToolCall": "script",
    "Turn": "script",
    "Conversation": "streams",
    "WebSocketInput": "streams",
    "WebSocketOutput": "streams",
    "calculator": "tools",
    "TurnLog": "turns",
    "TurnRecord": "turns",
    "TurnView": "view",
    "InputLimits": "wire",
    "Outgoing": "wire",
    "OutputConfig": "wire",
    "decode_input": "wire",
    "encode_event": "wire",
}

__all__ = [
    "AgentClient",
    "AgentEvent",
    "AgentEvents",
    "AgentSession",
    "AgentTurn",
    "Conversation",
    "ConversationFlow",
    "InputLimits",
    "Outgoing",
    "OutputConfig",
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
    "aconnect",
    "agent_handler",
    "aserve_agent",
    "calculator",
    "connect",
    "conversation",
    "decode_input",
    "encode_event",
    "serve_agent",
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
