"""Hypothesis strategies that turn a recorded API response into the ones an API could also send.

The starting points are the providers' recorded fixtures (real shapes); a drawn list of mutations then
drops keys anywhere in the tree, swaps values for JSON of another type, puts unknown values in status
fields, and re-expresses timestamps in other offsets and precisions. What a mapper receives is thus
always "shaped like the API", and every way it can be wrong is reachable.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from deploy_fetcher.model import parse_timestamp

__all__ = [
    "JSON",
    "OFFSETS",
    "STATUS_KEYS",
    "fixture",
    "is_timestamp",
    "mutated",
    "prune",
    "reoffset",
    "retimed",
    "timestamp_text",
    "timestamp_texts",
    "variants",
]

PROVIDER_FIXTURES = Path(__file__).resolve().parent.parent / "providers"

#: Keys whose values are states: mutated to unknown values and to other known ones.
STATUS_KEYS = frozenset(
    {
        "state",
        "status",
        "conclusion",
        "result",
        "deploymentStatus",
        "operationStatus",
        "type",
        "failure_reason",
    }
)
#: Values status keys take somewhere in the three APIs, so a mutation can also pick a valid one.
KNOWN_STATES = (
    "success",
    "failure",
    "error",
    "inactive",
    "in_progress",
    "queued",
    "waiting",
    "pending",
    "completed",
    "cancelled",
    "canceled",
    "skipped",
    "running",
    "created",
    "blocked",
    "failed",
    "manual",
    "succeeded",
    "succeededWithIssues",
    "partiallySucceeded",
    "abandoned",
    "inProgress",
    "notStarted",
    "rejected",
    "phaseCanceled",
    "Stage",
    "Job",
    "Phase",
    "Checkpoint",
    "Checkpoint.Approval",
    "deployment_rejected",
    "action_required",
    "timed_out",
)

_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
#: Any JSON value (what a wrong-typed field can hold).
JSON = st.recursive(
    _SCALARS,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=8,
)

#: One strategy per JSON type, so a wrong-typed value is as often a number as a list.
_TYPED = (
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
    st.lists(JSON, max_size=3),
    st.dictionaries(st.text(max_size=8), JSON, max_size=3),
)

#: UTC offsets real servers use (and the extremes), in minutes.
OFFSETS = st.sampled_from([0, 60, -300, 330, 345, -600, 840, -720, 120, -150])


def fixture(provider: str, name: str) -> Any:
    """A recorded response of ``tests/providers/<provider>/fixtures/<name>.json``."""
    return json.loads((PROVIDER_FIXTURES / provider / "fixtures" / f"{name}.json").read_text())


def is_timestamp(value: Any) -> bool:
    """Whether a JSON value is an aware ISO 8601 timestamp (what gets re-expressed)."""
    if not isinstance(value, str) or len(value) < 16 or value[4:5] != "-":
        return False
    try:
        parse_timestamp(value)
    except ValueError:
        return False
    return True


def timestamp_text(value: datetime, offset_minutes: int, digits: int, *, z: bool) -> str:
    """``value`` written as another server would: in another offset, with 0-7 fractional digits."""
    zone = timezone(timedelta(minutes=offset_minutes))
    local = value.astimezone(zone)
    text = local.strftime("%Y-%m-%dT%H:%M:%S")
    if digits:
        fraction = f"{local.microsecond:06d}0"[:digits]
        text += "." + fraction
    if offset_minutes == 0 and z:
        return text + "Z"
    return text + local.strftime("%z")[:3] + ":" + local.strftime("%z")[3:]


def _slots(doc: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every path to a value inside ``doc`` (dict keys and list indexes), the root excluded."""
    if isinstance(doc, dict):
        for key, value in doc.items():
            yield (*path, key)
            yield from _slots(value, (*path, key))
    elif isinstance(doc, list):
        for index, value in enumerate(doc):
            yield (*path, index)
            yield from _slots(value, (*path, index))


def _parent(doc: Any, path: tuple[Any, ...]) -> Any:
    for part in path[:-1]:
        doc = doc[part]
    return doc


def reoffset(doc: Any, offset_minutes: int, digits: int, *, z: bool = True) -> Any:
    """A copy of ``doc`` with every timestamp re-expressed; the instants stay the same.

    Fractional digits beyond the original's are zeros, so the value does not change either.
    """
    if isinstance(doc, dict):
        return {k: reoffset(v, offset_minutes, digits, z=z) for k, v in doc.items()}
    if isinstance(doc, list):
        return [reoffset(v, offset_minutes, digits, z=z) for v in doc]
    if is_timestamp(doc):
        when = parse_timestamp(doc)
        # Keep every digit the original had (at most microseconds), so the instant is unchanged.
        needed = 6 if when.microsecond % 1000 else (3 if when.microsecond else 0)
        return timestamp_text(when, offset_minutes, max(digits, needed), z=z)
    return doc


_TIMES = st.datetimes(
    min_value=datetime(1971, 1, 1),  # noqa: DTZ001 - hypothesis wants naive bounds
    max_value=datetime(2100, 1, 1),  # noqa: DTZ001
    timezones=st.just(UTC),
)


#: Timestamps no server should send but some do: "never" in .NET's minimum (also with a local offset,
#: which lies outside what a datetime can hold in UTC), the maximum, an impossible date, no zone.
ODD_TIMES = (
    "0001-01-01T00:00:00",
    "0001-01-01T00:00:00Z",
    "0001-01-01T00:00:00+01:00",
    "9999-12-31T23:59:59-01:00",
    "9999-12-31T23:59:59.9999999Z",
    "2026-02-30T00:00:00Z",
    "2026-03-02T07:02:05",
    "2026-03-02 07:02:05+02:00",
    "yesterday",
    "",
)


@st.composite
def timestamp_texts(draw: st.DrawFn) -> str:
    """A timestamp as some server could write it: any offset and precision, or an odd one."""
    if draw(st.integers(0, 3)) == 0:
        return draw(st.sampled_from(ODD_TIMES))
    return timestamp_text(
        draw(_TIMES), draw(OFFSETS), draw(st.integers(0, 7)), z=draw(st.booleans())
    )


@st.composite
def retimed(draw: st.DrawFn, base: Any) -> Any:
    """``base`` with some of its timestamps replaced by drawn ones (see :func:`timestamp_texts`)."""
    doc = copy.deepcopy(base)
    for path in [p for p in _slots(doc) if is_timestamp(_parent(doc, p)[p[-1]])]:
        if draw(st.booleans()):
            _parent(doc, path)[path[-1]] = draw(timestamp_texts())
    return doc


@st.composite
def _replacement(draw: st.DrawFn, key: Any, current: Any) -> Any:
    """A value another server, a proxy or a newer API version could put in this place."""
    choices = ["json", "null"]
    if key in STATUS_KEYS or isinstance(current, str):
        choices += ["state", "text"]
    if is_timestamp(current):
        choices += ["time", "time"]
    if isinstance(current, int) and not isinstance(current, bool):
        choices += ["number"]
    kind = draw(st.sampled_from(choices))
    if kind == "null":
        return None
    if kind == "state":
        return draw(st.sampled_from(KNOWN_STATES) | st.text(max_size=12))
    if kind == "text":
        return draw(st.text(max_size=30))
    if kind == "time":
        return draw(timestamp_texts())
    if kind == "number":
        return draw(st.integers(min_value=-(2**70), max_value=2**70))
    # Pick the type first: left to itself, hypothesis seldom draws a bare number or boolean here.
    return draw(st.sampled_from(_TYPED).flatmap(lambda strategy: strategy))


@st.composite
def mutated(draw: st.DrawFn, base: Any, max_mutations: int = 5) -> Any:
    """``base`` after up to ``max_mutations`` drawn changes (none at all is one of the draws)."""
    doc = copy.deepcopy(base)
    for _ in range(draw(st.integers(0, max_mutations))):
        slots = list(_slots(doc))
        if not slots:
            break
        path = draw(st.sampled_from(slots))
        parent = _parent(doc, path)
        key = path[-1]
        if isinstance(parent, dict) and draw(st.booleans()):
            del parent[key]
        else:
            parent[key] = draw(_replacement(key, parent[key]))
    return doc


def variants(base: Any, max_mutations: int = 5) -> st.SearchStrategy[Any]:
    """``base`` with drawn timestamps, then up to ``max_mutations`` drawn changes."""
    return retimed(base).flatmap(lambda doc: mutated(doc, max_mutations))


def prune(doc: Any, shape: dict[str, Any]) -> Any:
    """The parts of a recorded object that ``shape`` names (``{key: None | sub-shape}``).

    Mutations then land on what a mapper reads instead of on the dozens of fields it ignores; a list
    is pruned item by item.
    """
    if isinstance(doc, list):
        return [prune(item, shape) for item in doc]
    if not isinstance(doc, dict):
        return doc
    return {
        key: doc[key] if sub is None else prune(doc[key], sub)
        for key, sub in shape.items()
        if key in doc
    }
