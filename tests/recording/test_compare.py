"""diff(): missing, extra, moved, changed and timing per session and direction."""

from __future__ import annotations

from nbstream import Recording
from tests.recording.helpers import recording, text


def chat(times: tuple[float, float, float], answer: str = '{"type":"content","data":"42"}',
         **meta: object) -> Recording:
    q, a, e = times
    return recording(text(q, "c2s", '{"type":"chat","data":"6*7?","id":"c1"}'),
                     text(a, "s2c", answer.replace("}", f',"timestamp":"t{a}"}}', 1)),
                     text(e, "s2c", '{"type":"end","data":{"reply_to":"c1"}}'), **meta)


def test_the_same_flow_has_no_differences_even_with_other_timestamps() -> None:
    first, again = chat((0.0, 0.1, 0.2)), chat((5.0, 5.11, 5.21))
    assert first.diff(again).empty


def test_an_injected_change_is_found_where_it_is() -> None:
    d = chat((0, 0.1, 0.2)).diff(
        chat((0, 0.1, 0.2), answer='{"type":"content","data":"41"}'))
    assert list(d["change"]) == ["changed"]
    row = d.iloc[0]
    assert (row["session"], row["direction"], row["index"], row["other_index"]) == \
        ("s1", "s2c", 0, 0)
    assert '"42"' in row["payload"] and '"41"' in row["other_payload"]


def test_missing_and_extra_frames() -> None:
    original = recording(text(0, "c2s", "a"), text(0.1, "s2c", "x"), text(0.2, "s2c", "y"))
    other = recording(text(0, "c2s", "a"), text(0.1, "s2c", "y"), text(0.2, "s2c", "z"),
                      text(0.3, "c2s", "b"))
    d = original.diff(other, tolerance=1.0)
    got = sorted(zip(d["direction"], d["change"], d["payload"].fillna(""),
                     d["other_payload"].fillna(""), strict=True))
    assert got == [("c2s", "extra", "", "b"), ("s2c", "extra", "", "z"),
                   ("s2c", "missing", "x", "")]


def test_a_frame_at_another_place_is_one_moved_row() -> None:
    original = recording(text(0, "s2c", "x"), text(0.1, "s2c", "y"), text(0.2, "s2c", "z"))
    other = recording(text(0, "s2c", "y"), text(0.1, "s2c", "z"), text(0.2, "s2c", "x"),
                      text(0.3, "s2c", "x"))
    d = original.diff(other, tolerance=1.0)
    got = sorted(zip(d["change"], d["index"].fillna(-1), d["other_index"],
                     d["payload"].fillna(""), d["other_payload"], strict=True))
    # the first "x" moved from 0 to 2; the second "x" is only in other
    assert got == [("extra", -1, 3, "", "x"), ("moved", 0, 2, "x", "x")]


def test_a_slower_reply_is_a_timing_change_with_its_shift() -> None:
    d = chat((0, 0.1, 0.2)).diff(chat((0, 0.1, 0.5)), tolerance=0.05)
    [row] = d.itertuples()
    assert isinstance(row.shift, float)
    assert row.change == "timing" and row.type is None and abs(row.shift - 0.3) < 1e-6


def test_a_replay_at_4x_compares_its_sends_scaled() -> None:
    original = recording(text(0, "c2s", "a"), text(2.0, "c2s", "b"))
    on_time = recording(text(0, "c2s", "a"), text(0.5, "c2s", "b"), speed=4.0)
    late = recording(text(0, "c2s", "a"), text(0.6, "c2s", "b"), speed=4.0)
    assert original.diff(on_time).empty
    [row] = original.diff(late).itertuples()
    assert isinstance(row.shift, float)
    assert row.change == "timing" and abs(row.shift - 0.4) < 1e-6


def test_fast_replays_are_not_judged_on_send_times() -> None:
    original = recording(text(0, "c2s", "a"), text(2.0, "c2s", "b"))
    fast = recording(text(0, "c2s", "a"), text(0.001, "c2s", "b"), timing="fast")
    assert original.diff(fast).empty


def test_replies_are_timed_from_the_same_send_on_both_sides() -> None:
    # At 4x the second question leaves before the first answer ends; the first
    # answer is still timed from the first question.
    original = recording(text(0, "c2s", "q1"), text(0.3, "s2c", "a1"),
                         text(1.0, "c2s", "q2"), text(1.1, "s2c", "a2"))
    replay = recording(text(0, "c2s", "q1"), text(0.25, "c2s", "q2"),
                       text(0.3, "s2c", "a1"), text(0.35, "s2c", "a2"), speed=4.0)
    assert original.diff(replay).empty


def test_ignore_chooses_which_keys_do_not_count() -> None:
    a = recording(text(0, "s2c", '{"type":"x","seq":1}'))
    b = recording(text(0, "s2c", '{"type":"x","seq":2}'))
    assert len(a.diff(b)) == 1 and a.diff(b, ignore={"seq"}).empty


def test_sessions_only_on_one_side_are_all_missing_or_extra() -> None:
    a = recording(text(0, "c2s", "a", session="one"))
    b = recording(text(0, "c2s", "a", session="two"))
    d = a.diff(b)
    assert sorted(zip(d["session"], d["change"], strict=True)) == [("one", "missing"),
                                                                   ("two", "extra")]
