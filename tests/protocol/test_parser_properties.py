"""Property: whatever a peer sends, parsing gives a Message or a StreamError, nothing else."""

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from nbstream.protocol import Message, StreamError, parse_client_frame

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=30,
)
envelope_like = st.fixed_dictionaries(
    {},
    optional={
        "type": st.sampled_from(["chat", "ping", "pong", "auth", "content", ""]) | json_values,
        "data": json_values,
        "id": json_values,
        "timestamp": json_values,
        "content": json_values,
    },
)


def check(frame: str | bytes) -> None:
    result = parse_client_frame(frame)
    assert isinstance(result, Message | StreamError)
    if isinstance(result, Message) and result.type == "chat":
        assert isinstance(result.data["text"], str)


@settings(max_examples=400, deadline=None)
@given(st.text())
def test_any_text(frame: str) -> None:
    check(frame)


@settings(max_examples=400, deadline=None)
@given(st.binary())
def test_any_bytes(frame: bytes) -> None:
    check(frame)


@settings(max_examples=400, deadline=None)
@given(envelope_like)
def test_any_envelope_shaped_object(obj: dict[str, object]) -> None:
    check(json.dumps(obj))


@settings(max_examples=100, deadline=None)
@given(st.integers(min_value=1, max_value=5000), st.sampled_from(["[", '{"a":']))
def test_deep_nesting(depth: int, opener: str) -> None:
    closer = "]" if opener == "[" else "}"
    check('{"type": "chat", "data": ' + opener * depth + "1" + closer * depth + "}")
