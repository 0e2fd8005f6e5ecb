"""The event-stream parser: framing, fields, comments and line ends, fed in any chunking."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from deploy_fetcher.sinks.dashboard.sse import MAX_LINE_BYTES, SseError, SseEvent, SseParser


def _parse(*chunks: bytes) -> tuple[list[SseEvent], SseParser]:
    parser = SseParser()
    events = [event for chunk in chunks for event in parser.feed(chunk)]
    return events, parser


def test_an_event_with_id_type_and_data() -> None:
    """id, event and data lines followed by a blank line make one event."""
    events, parser = _parse(b'id: 7\nevent: reset-initiated\ndata: {"a":1}\n\n')
    assert [SseEvent("reset-initiated", '{"a":1}', "7")] == events
    assert "7" == parser.last_event_id


def test_multi_line_data_is_joined_with_line_feeds() -> None:
    """Several data lines are one value, joined by LF, without a trailing LF."""
    events, _ = _parse(b"data: first\ndata: second\ndata:\ndata: fourth\n\n")
    assert ["first\nsecond\n\nfourth"] == [e.data for e in events]


def test_comments_are_counted_and_never_dispatched() -> None:
    """`: ping` lines keep the stream alive without producing events."""
    events, parser = _parse(b": ping\n\n: ping\n\ndata: x\n\n")
    assert (["x"], 2) == ([e.data for e in events], parser.comments)


def test_event_type_defaults_to_message() -> None:
    """Without an event line the type is "message"."""
    events, _ = _parse(b"data: hello\n\n")
    assert [SseEvent("message", "hello", None)] == events


def test_retry_field_sets_the_reconnection_delay() -> None:
    """A retry field of digits only is kept; anything else is ignored."""
    _, parser = _parse(b"retry: 1000\n\n")
    assert 1000 == parser.retry_ms
    _, parser = _parse(b"retry: 1000\n\nretry: soon\n\nretry: 2.5\n\n")
    assert 1000 == parser.retry_ms


def test_crlf_cr_and_lf_line_ends_are_all_line_ends() -> None:
    """CRLF, bare CR and LF end lines alike."""
    events, parser = _parse(b"id: 1\r\nevent: a\rdata: x\r\n\r\nevent: b\ndata: y\r\r")
    assert [SseEvent("a", "x", "1"), SseEvent("b", "y", "1")] == events
    assert "1" == parser.last_event_id


def test_a_crlf_split_between_chunks_is_one_line_end() -> None:
    """A CR at the end of one chunk and the LF at the start of the next do not make a blank line."""
    events, _ = _parse(b"data: one\r", b"\ndata: two\r", b"\n\r", b"\n")
    assert ["one\ntwo"] == [e.data for e in events]


def test_id_persists_across_events_and_ignores_nul() -> None:
    """The last event id stays until a new id line; an id with NUL is ignored."""
    events, parser = _parse(b"id: 3\ndata: a\n\ndata: b\n\nid: 4\x005\ndata: c\n\n")
    assert ["3", "3", "3"] == [e.id for e in events]
    assert "3" == parser.last_event_id


def test_field_without_colon_and_unknown_fields() -> None:
    """`data` alone is an empty data line; unknown fields are ignored; one space after the colon is dropped."""
    events, _ = _parse(b"data\ndata:  two spaces\nfoo: bar\n\n")
    assert ["\n two spaces"] == [e.data for e in events]


def test_blank_line_without_data_dispatches_nothing_and_resets_the_type() -> None:
    """An event line without data is discarded at the blank line; the next event is a message."""
    events, _ = _parse(b"event: lonely\n\ndata: x\n\n")
    assert [SseEvent("message", "x", None)] == events


def test_an_event_cut_off_by_the_end_of_the_stream_is_not_dispatched() -> None:
    """Without the final blank line nothing is dispatched."""
    events, _ = _parse(b"event: a\ndata: partial\n")
    assert [] == events


def test_a_leading_byte_order_mark_is_dropped() -> None:
    """A UTF-8 BOM before the first field does not corrupt the field name."""
    events, _ = _parse(b"\xef\xbb\xbfdata: x\n\n")
    assert ["x"] == [e.data for e in events]


def test_an_endless_line_is_refused() -> None:
    """A peer that never ends a line cannot grow the buffer without bound."""
    parser = SseParser()
    with pytest.raises(SseError):
        parser.feed(b"data: " + b"x" * MAX_LINE_BYTES)


def test_the_emulator_wire_format_parses() -> None:
    """What the dashboard emulator writes (retry, pings, numbered events) parses as sent."""
    wire = (
        b"retry: 1000\n\n: ping\n\n"
        b'id: 1\nevent: reset-initiated\ndata: {"type":"reset-initiated","correlation_id":"c1"}\n\n'
    )
    events, parser = _parse(wire)
    assert [("1", "reset-initiated")] == [(e.id, e.type) for e in events]
    assert (1000, 1) == (parser.retry_ms, parser.comments)


_WIRE = (
    b"retry: 500\r\n: ping\r\n\r\nid: 1\r\nevent: a\r\ndata: x\r\ndata: y\r\n\r\n"
    b"id: 2\revent: b\rdata: z\r\r: ping\n\ndata: w\n\n"
)


@given(st.lists(st.integers(min_value=1, max_value=len(_WIRE) - 1), unique=True, max_size=12))
def test_any_chunking_gives_the_same_events(cuts: list[int]) -> None:
    """Splitting the byte stream anywhere (even inside a CRLF) changes nothing."""
    bounds = [0, *sorted(cuts), len(_WIRE)]
    chunks = [_WIRE[a:b] for a, b in itertools.pairwise(bounds)]
    events, parser = _parse(*chunks)
    expected = [SseEvent("a", "x\ny", "1"), SseEvent("b", "z", "2"), SseEvent("message", "w", "2")]
    assert expected == events
    assert (500, 2) == (parser.retry_ms, parser.comments)
