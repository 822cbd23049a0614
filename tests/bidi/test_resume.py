"""A client cut off during a slow tool resumes its session and gets the tool's result.

Upstream, a reconnect loses the results of tools still running. Here the agent runs
in the session, which outlives the connection: the cut is a real TCP abort
(``server.adisconnect(abrupt=True)``), and the client's reconnect is held at the
handshake (an auth function that waits) until the tool has finished and the agent
has answered, so everything after the cut reaches the client only by replay.
"""

from __future__ import annotations

import asyncio

from strands import tool
from strands.bidi import BidiAgent

from nbstream.events import FlowEvent
from nbstream.protocol import Position
from nbstream.strands import AgentEvent, AgentTurn, ScriptedBidiModel, aconnect
from tests.bidi.conftest import AgentServer, client_of, read_until
from tests.conftest import TIMEOUT, eventually

released = asyncio.Event()


@tool
async def slow_lookup(city: str) -> str:
    """Look up the weather, slowly.

    Args:
        city: The city.
    """
    await released.wait()
    return f"sunny in {city}"


def weather_agent() -> BidiAgent:
    script = [{"when": r"weather in (?P<city>\w+)", "tool": "slow_lookup",
               "input": {"city": "{city}"}, "say": "It is {result} today."}]
    return BidiAgent(model=ScriptedBidiModel(script, pace=0.001), tools=[slow_lookup])


def offsets(events: list[AgentEvent]) -> list[int]:
    positions = [Position.parse(event.id) for event in events]
    return [p.offset for p in positions if p is not None]


async def test_a_cut_during_a_slow_tool_resumes_with_the_result_once_and_in_order(
        agent_server: AgentServer) -> None:
    released.clear()
    door = asyncio.Event()
    door.set()

    async def auth(token: str) -> str | None:
        await door.wait()  # a reconnect waits here while the door is shut
        return "alice" if token == "tok" else None

    server = await agent_server(weather_agent, auth=auth, session_ttl=TIMEOUT * 4)
    stopped: list[FlowEvent] = []
    server.events.subscribe(lambda e: stopped.append(e) if e.kind == "out" and e.message
                            is not None and e.message.type == "bidi_response_stop" else None)
    agent = await aconnect(server.url, token="tok", timeout=TIMEOUT * 2)
    client = client_of(agent)
    await agent.asay("what is the weather in Paris?")
    before = await read_until(agent, "bidi_tool_use_blocks")

    door.clear()
    assert await server.adisconnect(agent.session_id or "", abrupt=True)
    reading = asyncio.create_task(agent.aresponse())  # notices the cut, reconnects, waits
    released.set()
    await eventually(lambda: len(stopped) == 2, what="the agent answered while the client "
                                                     "was away")
    assert client.reconnects == 0 and not reading.done()
    door.set()
    answer = await asyncio.wait_for(reading, TIMEOUT * 2)

    assert client.reconnects == 1 and client.recovered is True
    assert client.welcome is not None and client.welcome.data["replayed"] >= 10
    assert answer.text == "It is sunny in Paris today."
    everything = before + answer.events
    assert AgentTurn(everything).tools == [{"name": "slow_lookup", "input": {"city": "Paris"},
                                            "status": "success", "result": "sunny in Paris"}]
    seen = offsets(everything)
    assert seen == list(range(seen[0], seen[0] + len(seen)))  # once each, in order, no gap
    assert [e.type for e in answer.events][:3] == ["bidi_response_stop", "tool_result",
                                                  "tool_result_message"]
    assert (await agent.aturn("weather in Rome")).text == "It is sunny in Rome today."
    await agent.aclose()


async def test_what_is_said_during_a_reconnect_reaches_the_agent_after_the_resume(
        agent_server: AgentServer) -> None:
    door = asyncio.Event()
    door.set()

    async def auth(token: str) -> str | None:
        await door.wait()
        return "bob"

    server = await agent_server(auth=auth)
    agent = await aconnect(server.url, token="tok", timeout=TIMEOUT * 2)
    client = client_of(agent)
    assert (await agent.aturn("hello")).text == "Hello! Ask me a sum."
    door.clear()
    await server.adisconnect(agent.session_id or "", abrupt=True)
    reading = asyncio.create_task(agent.aresponse())
    await eventually(lambda: client.core.reconnecting, what="the client reconnects")
    await agent.asay("what is 5*5")  # waits in the send buffer
    door.set()
    answer = await asyncio.wait_for(reading, TIMEOUT * 2)
    assert answer.text == "5*5 is 25." and client.reconnects == 1
    await agent.aclose()
