"""WebSocket-level faults on a fake clock: whole messages dropped, doubled, held, swapped,
corrupted, stalled; everything else passes untouched, byte for byte."""

from __future__ import annotations

import json
import random

from nbstream.faults.frames import FrameReader
from nbstream.faults.pipe import Link
from nbstream.faults.units import Note, Way
from nbstream.faults.vocabulary import Fault
from tests.faults.wire import MASK, Driver, envelope, fault, frame, open_link

CONTENT, END = frame(envelope("content", "a")), frame(envelope("end"))


def link_with(*faults: Fault, seed: int = 1) -> Link:
    link = open_link(seed)
    for f in faults:
        link.install(f, 0.0)
    for pipe in link.pipes.values():
        pipe.report_frames = True
    return link


def send(link: Link, way: Way, at: float, *frames: bytes) -> Driver:
    d = Driver(link.pipes[way])
    d.push(at, [])
    for wire in frames:
        link.received(way, wire, at)
    d.out.extend((at, item) for item in link.pipes[way].poll(at))
    return d


def what(notes: list[Note]) -> list[str]:
    """Notes as short words: ``frame:content``, ``drop:end``..."""
    words = []
    for note in notes:
        if note.kind == "frame":
            words.append("frame:" + json.loads(note.payload)["type"])
        else:
            assert note.detail is not None
            words.append(f"{note.detail['fault']}:{note.detail.get('type', '')}")
    return words


def test_drop_by_type_removes_that_message_and_says_so_in_its_place() -> None:
    link = link_with(fault("drop", match="end"))
    d = send(link, "down", 0.0, CONTENT, END, CONTENT)
    assert d.data() == CONTENT + CONTENT
    assert what(link.pipes["down"].notes()) == ["frame:content", "drop:end", "frame:content"]


def test_drop_by_index_and_by_predicate() -> None:
    link = link_with(fault("drop", index=1), fault("drop", match=lambda m: m.text == "b"))
    b = frame(envelope("content", "b"))
    d = send(link, "down", 0.0, CONTENT, CONTENT, b, CONTENT)
    assert d.data() == CONTENT + CONTENT  # message 1, then the one saying "b"


def test_control_frames_always_pass() -> None:
    link = link_with(fault("drop"))
    ping, close = frame(b"", opcode=9), frame(b"\x03\xe8", opcode=8)
    d = send(link, "down", 0.0, CONTENT, ping, close)
    assert d.data() == ping + close


def test_times_counts_across_every_connection() -> None:
    drop = fault("drop", match="end", times=1)
    first, second = link_with(drop), link_with(drop, seed=2)
    assert send(first, "down", 0.0, END).data() == b""
    assert send(second, "down", 0.0, END).data() == END


def test_probability_with_a_seed_picks_the_same_messages_again() -> None:
    def dropped(seed: int) -> list[int]:
        link = link_with(fault("drop", probability=0.5), seed=seed)
        send(link, "down", 0.0, *[CONTENT] * 100)
        return [n.detail["index"] for n in link.pipes["down"].notes()
                if n.kind == "fault" and n.detail is not None]

    first = dropped(3)
    assert 25 < len(first) < 75
    assert dropped(3) == first and dropped(4) != first


def test_duplicate_sends_it_twice() -> None:
    link = link_with(fault("duplicate", match="end"))
    assert send(link, "down", 0.0, CONTENT, END).data() == CONTENT + END + END


def test_delay_holds_one_message_and_what_follows_waits_behind_it() -> None:
    link = link_with(fault("delay", ms=100, index=0))
    d = send(link, "down", 0.0, CONTENT, END)
    assert d.out == []
    assert d.run() == [(0.1, CONTENT + END)]


def test_reorder_swaps_a_message_with_the_next() -> None:
    link = link_with(fault("reorder", index=0))
    d = send(link, "down", 0.0, CONTENT, END)
    assert d.data() == END + CONTENT
    assert what(link.pipes["down"].notes()) == ["frame:end", "reorder:content",
                                                "frame:content"]


def test_reorder_lets_go_after_ms_when_nothing_follows() -> None:
    link = link_with(fault("reorder", index=0, ms=300))
    d = send(link, "down", 0.0, CONTENT)
    assert d.out == []
    assert d.run() == [(0.3, CONTENT)]


def test_corrupt_flips_payload_bytes_in_a_masked_frame_too() -> None:
    link = link_with(fault("corrupt", direction="up", bytes=2))
    text = envelope("chat", "hello")
    d = send(link, "up", 0.0, frame(text, mask=MASK))
    [(parsed, _, _)] = FrameReader(mask=True).feed(d.data())
    changed = [i for i, (a, b) in enumerate(zip(parsed.data, text.encode(), strict=True))
               if a != b]
    assert len(changed) == 2 and all(parsed.data[i] ^ 0xFF == text.encode()[i] for i in changed)
    try:
        bytes(parsed.data).decode()
        raise AssertionError("corrupted JSON text should not be valid UTF-8")
    except UnicodeDecodeError:
        pass


def test_stall_holds_one_direction_until_removed_and_loses_nothing() -> None:
    stall = fault("stall")
    link = link_with(stall)
    down = send(link, "down", 0.0, CONTENT, END)
    up = send(link, "up", 0.0, frame("ping", mask=MASK))
    assert down.out == [] and up.data() == frame("ping", mask=MASK)
    assert link.pipes["down"].held_bytes == len(CONTENT + END)
    link.uninstall(stall.id, 2.0)
    assert link.pipes["down"].poll(2.0) == [CONTENT + END]


def test_stall_for_ms_lets_go_by_itself() -> None:
    link = link_with(fault("stall", ms=500))
    d = send(link, "down", 0.1, CONTENT)
    assert d.run() == [(0.5, CONTENT)]


def test_a_fault_row_keeps_its_place_behind_bytes_still_held_downstream() -> None:
    link = link_with(fault("drop", match="end"), fault("latency", ms=100))
    d = send(link, "down", 0.0, CONTENT, END)
    pipe = link.pipes["down"]
    assert what(pipe.notes()) == ["latency:"]  # the drop waits for the content before it
    d.run()
    assert what(pipe.notes()) == ["frame:content", "drop:end"]


def test_removing_a_message_fault_sends_what_it_held_through_the_faults_after_it() -> None:
    stall = fault("stall")
    link = link_with(stall, fault("latency", ms=100))
    d = send(link, "down", 0.0, CONTENT)
    link.uninstall(stall.id, 1.0)
    assert [(round(at, 6), item) for at, item in d.run()] == [(1.1, CONTENT)]


def test_untouched_messages_leave_byte_for_byte_as_they_came() -> None:
    link = link_with(fault("drop", match="nothing-matches"), fault("corrupt", index=1000))
    wires = [frame(envelope("content", str(i)) * (i % 7 + 1)) for i in range(300)]
    d = send(link, "down", 0.0, *wires)
    assert d.data() == b"".join(wires)


def test_the_session_comes_from_the_welcome() -> None:
    link = open_link()
    assert link.session_id == "s1"  # from the request, until the server says
    fresh = Link(2, random.Random(1))
    assert fresh.session_id == "proxy-2"
    welcome = frame('{"type":"welcome","data":{"session_id":"abc"},"id":"1","timestamp":"t"}')
    link2 = open_link()
    link2.welcome_session = None
    link2._welcome_checked = False
    link2.received("down", welcome, 0.0)
    assert link2.session_id == "abc"
