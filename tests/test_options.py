"""Options are defined once, shown in full signatures, and checked where they enter:
the right type, finite, in range, with an error that names the option and the value."""

from __future__ import annotations

import inspect
import math
from dataclasses import fields
from typing import Any

import pytest

import nbstream
from nbstream.client import ConnectKwargs, ConnectOptions
from nbstream.loadtest.options import CONNECT_KEYWORDS, LoadTestKwargs, LoadTestOptions
from tests.conftest import ServerFactory


@pytest.mark.parametrize(("options", "kwargs", "functions", "passed_through"), [
    (ConnectOptions, ConnectKwargs, [nbstream.connect, nbstream.aconnect], frozenset()),
    (LoadTestOptions, LoadTestKwargs,
     [nbstream.load_test, nbstream.aload_test, nbstream.start_load_test], CONNECT_KEYWORDS),
])
def test_twins_share_one_definition(options: type, kwargs: type, functions: list[Any],
                                    passed_through: frozenset[str]) -> None:
    names = [f.name for f in fields(options) if f.name != "connect_options"]
    declared = list(kwargs.__annotations__)
    assert declared[:len(names)] == names
    # then websockets' own keywords, so that a type checker accepts what is documented
    assert set(declared[len(names):]) == passed_through
    defaults = {f.name: f.default for f in fields(options) if f.name in names}
    for function in functions:
        signature = inspect.signature(function)
        shown = {n: p.default for n, p in signature.parameters.items() if n in defaults}
        assert shown == defaults, function.__name__


@pytest.mark.parametrize(("call", "message", "error"), [
    (lambda: nbstream.ServerOptions(heartbeat_interval="x"),  # type: ignore[arg-type]
     r"serve\(heartbeat_interval='x'\): must be a finite number > 0", TypeError),
    (lambda: nbstream.ServerOptions(heartbeat_interval=math.nan),
     r"serve\(heartbeat_interval=nan\)", ValueError),
    (lambda: nbstream.ServerOptions(open_timeout=-1.0), r"open_timeout=-1.0", ValueError),
    (lambda: nbstream.ServerOptions(send_timeout=0), r"send_timeout=0", ValueError),
    (lambda: nbstream.ServerOptions(session_ttl=-5), r"session_ttl=-5", ValueError),
    (lambda: nbstream.ServerOptions(max_connections=-1), r"max_connections=-1", ValueError),
    (lambda: nbstream.ServerOptions(max_connections=2.5),  # type: ignore[arg-type]
     r"max_connections=2.5\): must be an integer", TypeError),
    (lambda: nbstream.ServerOptions(metrics="yes"),  # type: ignore[arg-type]
     r"metrics='yes'", TypeError),
    (lambda: nbstream.ServerOptions.from_kwargs({"heartbeat": 1}),
     r"unknown option\(s\) heartbeat", TypeError),
    (lambda: LoadTestOptions(messages=2.5),  # type: ignore[arg-type]
     r"load_test\(messages=2.5\): must be an integer", TypeError),
    (lambda: LoadTestOptions(timeout=math.inf), r"load_test\(timeout=inf\)", ValueError),
    (lambda: LoadTestOptions(ramp_up=math.nan), r"load_test\(ramp_up=nan\)", ValueError),
    (lambda: LoadTestOptions(rate=10.0, duration=math.inf), r"duration=inf", ValueError),
    (lambda: LoadTestOptions.from_kwargs({"conections": 5}), r"conections", TypeError),
    (lambda: ConnectOptions(timeout=-1.0), r"connect\(timeout=-1.0\)", ValueError),
    (lambda: ConnectOptions(token_in="cookie"),  # type: ignore[arg-type]
     r"connect\(token_in='cookie'\): must be one of", ValueError),
])
def test_bad_options_are_named(call: Any, message: str, error: type[Exception]) -> None:
    with pytest.raises(error, match=message):
        call()


def test_known_websockets_keywords_pass_through_a_load_test() -> None:
    options = LoadTestOptions.from_kwargs({"connections": 2, "max_size": 2**20})
    assert options.connect_options == {"max_size": 2**20}


@pytest.mark.parametrize(("kwargs", "message", "error"), [
    ({"host": None}, r"serve\(host=None\)", TypeError),
    ({"port": 99999}, r"serve\(port=99999\): must be an integer from 0 to 65535", ValueError),
    ({"port": -1}, r"port=-1", ValueError),
    ({"heartbeat_interval": math.nan}, r"heartbeat_interval=nan", ValueError),
])
async def test_serve_refuses_before_binding_and_leaves_no_listener(
    kwargs: dict[str, Any], message: str, error: type[Exception],
) -> None:
    with pytest.raises(error, match=message):
        await nbstream.aserve("echo", **kwargs)


async def test_an_unresolvable_host_is_named() -> None:
    with pytest.raises(OSError, match=r"256\.1\.1\.1"):
        await nbstream.aserve("echo", host="256.1.1.1")


async def test_a_port_in_use_is_named_and_the_first_server_keeps_serving(
    start_server: ServerFactory,
) -> None:
    first = await start_server("echo")
    with pytest.raises(OSError, match=f"127.0.0.1:{first.port}"):
        await nbstream.aserve("echo", port=first.port)
    client = await nbstream.aconnect(first.url)
    assert (await client.achat("still here", timeout=5.0))[0].text == "still here"
    await client.aclose()
