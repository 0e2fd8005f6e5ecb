"""Per-sink selection: include/exclude filters on canonical names, then renames."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from deploy_fetcher.config import SinkConfig
from deploy_fetcher.engine.select import rename, select
from deploy_fetcher.model import DeployEvent, Status

Make = Callable[..., DeployEvent]


def _sink(**keys: Any) -> SinkConfig:
    return SinkConfig(name="s", type="stdout", **keys)


def test_no_filters_no_renames_returns_the_same_event(make_event: Make) -> None:
    """A sink without filters or renames takes every event untouched."""
    event = make_event()
    assert event is select(_sink(), event)


@pytest.mark.parametrize(
    ("include", "event", "kept"),
    [
        ({"services": ["check*"]}, ("checkout", "prod", "success"), True),
        ({"services": ["check*"]}, ("billing", "prod", "success"), False),
        ({"environments": ["prod", "staging"]}, ("checkout", "staging", "success"), True),
        ({"environments": ["prod"]}, ("checkout", "dev", "success"), False),
        ({"statuses": ["success", "failure"]}, ("checkout", "prod", "failure"), True),
        ({"statuses": ["success"]}, ("checkout", "prod", "in-progress"), False),
        (
            {"services": ["checkout"], "statuses": ["success"]},
            ("checkout", "prod", "failure"),
            False,
        ),
        ({"services": ["Checkout"]}, ("checkout", "prod", "success"), False),
    ],
)
def test_include_keeps_only_events_matching_every_criterion(
    make_event: Make, include: dict[str, list[str]], event: tuple[str, str, str], kept: bool
) -> None:
    """Include globs are case-sensitive and every criterion set must match."""
    service, environment, status = event
    candidate = make_event(service=service, environment=environment, status=status)
    assert kept == (select(_sink(include=include), candidate) is not None)


@pytest.mark.parametrize(
    ("exclude", "environment", "status", "kept"),
    [
        ({"environments": ["dev*"]}, "dev-eu", "success", False),
        ({"environments": ["dev*"]}, "prod", "success", True),
        ({"environments": ["dev*"], "statuses": ["failure"]}, "dev", "success", True),
        ({"environments": ["dev*"], "statuses": ["failure"]}, "dev", "failure", False),
        ({}, "dev", "failure", True),
    ],
)
def test_exclude_drops_events_matching_every_criterion(
    make_event: Make, exclude: dict[str, list[str]], environment: str, status: str, kept: bool
) -> None:
    """An exclude drops only what meets all its criteria; an empty exclude drops nothing."""
    event = make_event(environment=environment, status=status)
    assert kept == (select(_sink(exclude=exclude), event) is not None)


def test_filters_see_canonical_names_and_renames_come_after(make_event: Make) -> None:
    """A filter is written in the fetcher's names even when the sink renames them."""
    config = _sink(
        include={"services": ["checkout"]},
        rename={"services": {"checkout": "Amazon ECS"}, "environments": {"prod": "production"}},
    )
    selected = select(config, make_event())
    assert selected is not None
    assert ("Amazon ECS", "production") == (selected.service, selected.environment)


def test_rename_keeps_every_other_field(make_event: Make) -> None:
    """Renaming touches service and environment only."""
    event = make_event()
    selected = select(_sink(rename={"services": {"checkout": "shop"}}), event)
    assert selected is not None
    assert event.model_dump(exclude={"service"}) == selected.model_dump(exclude={"service"})


def test_rename_exact_key_wins_over_glob_and_first_glob_wins() -> None:
    """An exact name is looked up first, then the globs in the order they are written."""
    table = {"api-*": "Amazon ECS", "api-lambda": "AWS Lambda", "api-l*": "never"}
    assert "AWS Lambda" == rename(table, "api-lambda")
    assert "Amazon ECS" == rename(table, "api-lx")
    assert "web" == rename(table, "web")


def test_rename_to_an_overlong_name_is_truncated(make_event: Make) -> None:
    """A rename cannot produce an event the dashboard would refuse: names are cut to the limit."""
    selected = select(_sink(rename={"environments": {"prod": "p" * 100}}), make_event())
    assert selected is not None
    assert "p" * 64 == selected.environment


def test_rename_to_blank_keeps_the_original(make_event: Make) -> None:
    """An empty rename target is a config slip; the name stays as it was."""
    selected = select(_sink(rename={"services": {"checkout": "  "}}), make_event())
    assert selected is not None
    assert "checkout" == selected.service


def test_status_filter_uses_the_enum(make_event: Make) -> None:
    """Status filters compare Status values, so YAML strings work."""
    config = _sink(include={"statuses": [Status.SUCCESS]})
    assert select(config, make_event(status="cancelled")) is None
