"""How timestamps and cursors are written into the state file's columns."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from deploy_fetcher.store._codec import dump_cursor, from_db, load_cursor, to_db

_aware = st.datetimes(
    min_value=datetime(1970, 1, 1),  # noqa: DTZ001 - hypothesis bounds are naive by design
    max_value=datetime(9999, 1, 1),  # noqa: DTZ001
    timezones=st.sampled_from(
        [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(-timedelta(hours=8))]
    ),
)


def test_timestamps_are_fixed_width_utc_text() -> None:
    """Any offset is stored as the same instant in UTC, with microseconds and a Z."""
    local = datetime(2024, 5, 1, 14, 0, 0, 5, tzinfo=timezone(timedelta(hours=2)))

    assert "2024-05-01T12:00:00.000005Z" == to_db(local)


@given(first=_aware, second=_aware)
def test_text_order_is_time_order(first: datetime, second: datetime) -> None:
    """Comparing stored text compares instants, whatever offsets the datetimes had."""
    assert (first < second) == (to_db(first) < to_db(second))


@given(value=_aware)
def test_timestamps_round_trip_as_aware_utc(value: datetime) -> None:
    """Reading back gives the same instant, in UTC."""
    back = from_db(to_db(value))

    assert (value, UTC) == (back, back.tzinfo)


def test_naive_datetimes_are_refused() -> None:
    """A datetime without zone cannot be stored: its instant is unknown."""
    with pytest.raises(ValueError, match="timezone-aware"):
        to_db(datetime(2024, 5, 1))  # noqa: DTZ001


def test_cursors_are_compact_sorted_json() -> None:
    """Cursor JSON is stable (sorted keys) and compact, and reads back equal."""
    text = dump_cursor("k", {"b": [1, "é"], "a": None})

    assert ('{"a":null,"b":[1,"\\u00e9"]}', {"a": None, "b": [1, "é"]}) == (text, load_cursor(text))


def test_non_json_cursors_are_refused_with_their_key() -> None:
    """NaN is not JSON; the error names the cursor's key."""
    with pytest.raises(ValueError, match="cursor for 'gh/octo/api' is not JSON-serialisable"):
        dump_cursor("gh/octo/api", {"x": float("nan")})


def test_a_stored_value_that_is_not_an_object_is_refused() -> None:
    """Reading a cursor that is not a JSON object is an error, not a surprise type."""
    with pytest.raises(ValueError, match="not a JSON object"):
        load_cursor("[1, 2]")
