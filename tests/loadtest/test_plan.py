"""The timetable: parts cover the plan exactly, the open model's slots, validation."""

from __future__ import annotations

import pytest

from nbstream.loadtest.plan import LoadPlan

URL = "ws://127.0.0.1:9/ws"


def test_parts_cover_connections_and_slots_exactly_once() -> None:
    plan = LoadPlan.create(URL, connections=7, rate=100.0, duration=0.5, processes=3)
    parts = plan.split()
    connections = sorted(c for part in parts for c in part.connections)
    slots = sorted(s for part in parts for s in part.slots)
    assert connections == list(range(7))
    assert slots == list(range(50))
    assert [part.index for part in parts] == [0, 1, 2]


def test_models_and_planned_counts() -> None:
    assert LoadPlan.create(URL, connections=4, messages=3).planned == 12
    assert LoadPlan.create(URL, connections=4, messages=3).model == "closed"
    assert LoadPlan.create(URL, connections=4, duration=2.0).planned is None
    open_plan = LoadPlan.create(URL, connections=4, rate=250.0, duration=2.0)
    assert (open_plan.model, open_plan.planned) == ("open", 500)
    assert open_plan.intended(250) == pytest.approx(1.0)
    assert LoadPlan.create(URL, connections=4, messages=3, rate=10.0).planned == 12


def test_payloads() -> None:
    plan = LoadPlan.create(URL, payload="m{i} c{connection}")
    assert plan.text(3, 5) == "m5 c3"
    assert LoadPlan.create(URL, payload='{{"raw": 1}}').text(0, 0) == '{"raw": 1}'
    assert LoadPlan.create(URL, payload=b"\x00", message_type=None).text(0, 0) == b"\x00"
    assert LoadPlan.create(URL, payload=lambda c, i: f"{c}:{i}").text(2, 9) == "2:9"


@pytest.mark.parametrize("template", [
    "Test message {i}", "A {i} B", "{i}{{x}}", "a {i} {{ b }}", "{i!r}", "{i:05d}",
    "{connection}-{i}", "x {i} y {i}", "{connection}", "{i:>{connection}}"])
def test_templates_read_as_str_format_reads_them(template: str) -> None:
    texts = LoadPlan.create(URL, payload=template, protocol="raw").texts()
    assert [texts(c, i) for c, i in ((2, 17), (0, 0))] == [
        template.format(i=17, connection=2), template.format(i=0, connection=0)]


@pytest.mark.parametrize("protocol", ["raw", "text", "json"])
@pytest.mark.parametrize("template", ["Test message {i}", "{i}", "é {i} ☃", "{i}{{x}}"])
def test_a_counted_payload_is_formatted_and_framed_in_one_step(protocol: str,
                                                               template: str) -> None:
    plan = LoadPlan.create(URL, payload=template, protocol=protocol)
    frames, frame = plan.text_frames(), plan.wire_protocol().frame
    assert frames is not None
    assert [frames(c, i) for c, i in ((2, 17), (0, 0))] == [
        frame(template.format(i=17, connection=2)), frame(template.format(i=0, connection=0))]


@pytest.mark.parametrize("payload", ["{connection}-{i}", "{i:05d}", "{i!r}", "fixed", b"x",
                                     lambda c, i: f"{c}:{i}"])
def test_other_payloads_are_formatted_then_framed(payload: object) -> None:
    assert LoadPlan.create(URL, payload=payload, protocol="raw").text_frames() is None


def test_ramp_up_spreads_connections() -> None:
    plan = LoadPlan.create(URL, connections=10, ramp_up=2.0)
    assert [plan.connect_delay(c) for c in (0, 5, 9)] == pytest.approx([0.0, 1.0, 1.8])


@pytest.mark.parametrize(("kwargs", "complaint"), [
    ({"connections": 0}, "connections"),
    ({"rate": -1.0}, "rate"),
    ({"duration": 0.0}, "duration"),
    ({"processes": 5, "connections": 4}, "processes"),
    ({"timeout": 0.0}, "timeout"),
    ({"payload": b"x"}, "message_type=None"),
    ({"rate": 1.0, "duration": 0.1}, "less than one message"),
    ({"payload": '{"text": 1}'}, "double literal braces"),
])
def test_bad_arguments_are_named(kwargs: dict[str, object], complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint):
        LoadPlan.create(URL, **kwargs)


def test_target_must_be_a_websocket_url() -> None:
    with pytest.raises(ValueError, match="ws://"):
        LoadPlan.create("http://127.0.0.1/ws")


def test_parameters_are_json_values() -> None:
    plan = LoadPlan.create(URL, payload=lambda c, i: "x",
                           connect_options={"ssl_handshake_timeout": 3, "sock": object()})
    parameters = plan.parameters()
    assert parameters["payload"].startswith("<function")
    assert parameters["connect_options"]["ssl_handshake_timeout"] == 3
    assert parameters["connect_options"]["sock"].startswith("<object")
    assert parameters["target"] == URL and parameters["model"] == "closed"
