"""Handlers: the built-in ones (``"echo"``, ``"agent"``), what a handler of your own
looks like, and :func:`run_in_thread` for CPU work.

Two kinds of handler:

* a **reply handler**, an async generator ``async def handler(message, session)`` that
  yields what to stream back for one request (a ``chat``): :class:`~nbstream.Message`
  objects, dicts with ``type`` and ``data``, or plain strings (sent as ``content``);
  the server sends ``end`` after the last one. Other protocols take dicts, lists,
  strings and bytes.
* a **conversation handler**, a coroutine function ``async def handler(conversation)``
  that runs once per session and reads and writes whenever it likes
  (:class:`nbstream.server.Conversation`).
"""

from __future__ import annotations

import ast
import asyncio
import functools
import inspect
import operator
import re
from collections.abc import AsyncGenerator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from nbstream.protocol import Message, MessageType, Session, new_id

if TYPE_CHECKING:
    from nbstream.server.conversation import Conversation

T = TypeVar("T")


class Handler(Protocol):
    """The shape of a reply handler: ``async def handler(message, session): yield ...``."""

    def __call__(self, message: Message, session: Session) -> AsyncGenerator[Any, None]: ...


ConversationHandler = Callable[["Conversation"], Awaitable[None]]
"""The shape of a conversation handler: ``async def handler(conversation): ...``."""


@dataclass(frozen=True)
class ResolvedHandler:
    """A handler and its kind: exactly one of the two is set."""

    reply: Handler | None = None
    conversation: ConversationHandler | None = None


_pool: ThreadPoolExecutor | None = None


async def run_in_thread(func: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """Run CPU-bound ``func(*args, **kwargs)`` in nbstream's thread pool and await it.

    The event loop (and with it every other connection and heartbeat) keeps running
    meanwhile. Pure-Python work still holds the GIL: for long computations use a
    process pool or a library that releases the GIL (NumPy, hashlib, compression).
    """
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="nbstream-cpu")
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_pool, functools.partial(func, *args, **kwargs))


async def echo(message: Message, session: Session) -> AsyncGenerator[Message, None]:
    """Stream the chat's text straight back as one ``content`` message."""
    yield Message(MessageType.CONTENT, {"text": message.data["text"]})


async def echo_frames(message: Message, session: Session) -> AsyncGenerator[Message, None]:
    """Send the message straight back as it came: ``serve("echo")`` for the ``json``,
    ``text`` and ``raw`` protocols (and protocols of your own).

    Text and binary frames go back byte for byte (a fragmented message whole: websockets
    reassembles it); a JSON value goes back as its JSON.
    """
    yield message


_OPERATORS: dict[type, Callable[..., Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
    ast.USub: operator.neg,
    ast.UAdd: operator.pos,
}
_ARITHMETIC = re.compile(r"[-+(]*\d[\d\s.+\-*/%()^]*")


def calculate(expression: str) -> float | int:
    """Evaluate plain arithmetic (numbers, + - * / // % ** and brackets), nothing else.

    Raises:
        ValueError: for anything that is not plain arithmetic or is too large.
    """

    def walk(node: ast.AST) -> float | int:
        if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
            if isinstance(node.value, bool):
                raise ValueError("not plain arithmetic: a boolean")
            return node.value
        if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
            left, right = walk(node.left), walk(node.right)
            if isinstance(node.op, ast.Pow) and abs(right) > 100:
                raise ValueError("exponent too large")
            return _OPERATORS[type(node.op)](left, right)  # type: ignore[no-any-return]
        if isinstance(node, ast.UnaryOp) and type(node.op) in _OPERATORS:
            return _OPERATORS[type(node.op)](walk(node.operand))  # type: ignore[no-any-return]
        raise ValueError(f"not plain arithmetic: {ast.dump(node)[:40]}")

    if len(expression) > 200:
        raise ValueError("expression too long")
    try:
        tree = ast.parse(expression.replace("^", "**"), mode="eval")
        return walk(tree.body)
    except (SyntaxError, ZeroDivisionError, OverflowError) as exc:
        raise ValueError(str(exc)) from None


def find_arithmetic(text: str) -> str | None:
    """The arithmetic expression a text asks about (``"what is 6*7?"`` -> ``"6*7"``)."""
    for match in _ARITHMETIC.finditer(text):
        candidate = match.group().strip()
        if re.search(r"\d\s*(\*\*|[-+*/%^])\s*[-+(]*\d", candidate):
            return candidate
    return None


def _tokens(text: str) -> list[str]:
    """Split text into word tokens that keep their following space, like an LLM's."""
    return re.findall(r"\S+\s*", text)


class Agent:
    """A scripted agent that needs no LLM; ``serve(handler="agent")`` uses the defaults.

    For each chat it streams a reply token by token as ``content`` messages, waiting
    ``token_delay`` seconds between tokens. When the text asks for arithmetic
    ("what is 6*7?") it first emits ``tool_use`` for its calculator tool, runs the
    tool in a thread (:func:`run_in_thread`), emits ``tool_result``, then explains.
    """

    def __init__(self, token_delay: float = 0.01) -> None:
        self.token_delay = token_delay

    async def __call__(self, message: Message, session: Session) -> AsyncGenerator[Message, None]:
        text = str(message.data.get("text", ""))
        expression = find_arithmetic(text)
        if expression is None:
            reply = (
                f"You said: {text.strip()!r}. I am nbstream's scripted agent, and I stream "
                "my answers one token at a time. Ask me some arithmetic, like 'what is "
                "6*7?', to see me use a tool."
            )
        else:
            call_id = new_id()
            yield Message(
                MessageType.TOOL_USE,
                {"id": call_id, "name": "calculator", "input": {"expression": expression}},
            )
            try:
                result: Any = await run_in_thread(calculate, expression)
                output, is_error = result, False
            except ValueError as exc:
                output, is_error = str(exc), True
            yield Message(
                MessageType.TOOL_RESULT,
                {"tool_use_id": call_id, "output": output, "is_error": is_error},
            )
            reply = (
                f"The calculator says {expression} = {output}."
                if not is_error
                else f"I could not calculate {expression}: {output}."
            )
        for token in _tokens(reply):
            if self.token_delay > 0:
                await asyncio.sleep(self.token_delay)
            yield Message(MessageType.CONTENT, {"text": token})


def _agent(envelope: bool) -> Handler:
    if not envelope:
        raise ValueError("the 'agent' handler speaks the nbstream protocol: serve it with "
                         "protocol='nbstream', or serve 'echo' or a handler of your own")
    return Agent()


BUILTIN_HANDLERS: dict[str, Callable[[bool], Handler]] = {
    "echo": lambda envelope: echo if envelope else echo_frames,
    "agent": _agent,
}
"""Built-in handlers by name; each is made for the nbstream envelope (True) or for
another protocol (False)."""


def resolve_handler(handler: str | Handler | ConversationHandler, *,
                    envelope: bool = True) -> ResolvedHandler:
    """A handler from a built-in name, a reply handler or a conversation handler.

    ``envelope`` says whether the server speaks nbstream's envelope: the built-in
    handlers differ (``"echo"`` sends other protocols' frames back as they came).

    Raises:
        ValueError: for an unknown name, or ``"agent"`` without the envelope.
        TypeError: when ``handler`` is neither kind of handler.
    """
    if isinstance(handler, str):
        try:
            make = BUILTIN_HANDLERS[handler]
        except KeyError:
            raise ValueError(
                f"unknown handler {handler!r}; built in: {', '.join(sorted(BUILTIN_HANDLERS))}"
            ) from None
        return ResolvedHandler(reply=make(envelope))
    call = type(handler).__call__ if callable(handler) else None
    if inspect.isasyncgenfunction(handler) or inspect.isasyncgenfunction(call):
        return ResolvedHandler(reply=handler)  # type: ignore[arg-type]
    if inspect.iscoroutinefunction(handler) or inspect.iscoroutinefunction(call):
        return ResolvedHandler(conversation=handler)  # type: ignore[arg-type]
    raise TypeError(
        "a handler must be an async generator function that yields replies "
        "(async def handler(message, session): yield ...) or a coroutine function "
        "that runs the whole session (async def handler(conversation): ...)"
    )

