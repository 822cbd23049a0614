"""What the scripted model hears: a connection's inbox and what the inputs in it mean.

Inputs arrive as the SDK sends them to a model: a ``BidiMessage`` of text and image
blocks (user input) or of tool results, or an ``AudioDelta``. ``stop()`` puts
:data:`CLOSED` in the inbox so that the connection's reader returns.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from dataclasses import dataclass, field

from strands.bidi.types import AudioDelta, BidiMessage
from strands.types.content import TextBlock
from strands.types.media import ImageBlock
from strands.types.tools import ToolResultBlock


class Closed:
    """Put in a connection's inbox by ``stop()``: its reader returns."""


CLOSED = Closed()
Inbound = BidiMessage | AudioDelta | Closed


@dataclass
class Utterance:
    """One user input to answer: its words (or audio transcript) and its audio size."""

    words: str
    seconds: float = 0.0
    size: int = 0


@dataclass
class Connection:
    """What one ``start()`` opened: its inbox and the inputs read ahead of their turn."""

    id: str
    inbox: asyncio.Queue[Inbound]
    backlog: deque[Inbound] = field(default_factory=deque)
    closed: bool = False

    def close(self) -> None:
        """Tell the reader to return, even when the inbox is full."""
        if self.inbox.full():
            self.inbox.get_nowait()
        self.inbox.put_nowait(CLOSED)


def is_tool_results(message: BidiMessage) -> bool:
    """Whether a message carries tool results (the SDK never mixes them with user input)."""
    return bool(message.content) and isinstance(message.content[0], ToolResultBlock)


def is_user_input(item: Inbound) -> bool:
    """Whether an input comes from the user (and so interrupts a response)."""
    if isinstance(item, AudioDelta):
        return True
    return isinstance(item, BidiMessage) and not is_tool_results(item)


def result_text(block: ToolResultBlock) -> str:
    """A tool result as the text the model speaks for ``{result}``."""
    parts = []
    for content in block.content:
        if "text" in content:
            parts.append(str(content["text"]))
        elif "json" in content:
            parts.append(json.dumps(content["json"], default=str))
        else:
            parts.append(f"[{', '.join(content)}]")
    return " ".join(parts)


def utterance(message: BidiMessage) -> Utterance:
    """The words of a user message; an image is described by its format and size."""
    parts = []
    for block in message.content:
        if isinstance(block, TextBlock):
            parts.append(block.text)
        elif isinstance(block, ImageBlock):
            size = len(block.source.get("bytes", b""))
            parts.append(f"(image: {block.format}, {size} bytes)")
    return Utterance(" ".join(parts))
