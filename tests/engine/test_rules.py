"""Mapping rules: renames, templates, filters and promotion-order parents."""

from __future__ import annotations

from deploy_fetcher.config import Filter, NameRule, RulesConfig
from deploy_fetcher.engine.rules import apply_rules, fill_parents
from deploy_fetcher.model import DeployEvent, Status


def _event(deployment_id="d1", service="api", environment="production", status="success", **kw):
    return DeployEvent(
        deployment_id=deployment_id,
        service=service,
        environment=environment,
        status=status,
        happened_at=kw.pop("happened_at", "2026-03-01T10:00:00Z"),
        **kw,
    )


def test_rename_maps_exact_names():
    """An environment rename turns `production` into `prod`; other names pass unchanged."""
    rules = RulesConfig(environment=NameRule(rename={"production": "prod"}))
    assert apply_rules(_event(), rules).environment == "prod"
    assert apply_rules(_event(environment="dev"), rules).environment == "dev"


def test_template_uses_event_fields_and_metadata():
    """A service template can combine metadata and the (renamed) service."""
    rules = RulesConfig(
        service=NameRule(rename={"api": "backend"}, template="{repo_name}-{service}")
    )
    event = _event(metadata={"repo_name": "shop"})
    assert apply_rules(event, rules).service == "shop-backend"


def test_template_with_unknown_field_keeps_the_name():
    """A template naming a missing field leaves the name as it was instead of dropping the event."""
    rules = RulesConfig(service=NameRule(template="{nope}-{service}"))
    assert apply_rules(_event(), rules).service == "api"


def test_include_and_exclude_filters():
    """Include keeps only matches; exclude drops events matching all its criteria."""
    rules = RulesConfig(
        include=Filter(environments=["prod*"]),
        exclude=Filter(services=["test-*"], statuses=[Status.FAILURE]),
    )
    assert apply_rules(_event(environment="production"), rules) is not None
    assert apply_rules(_event(environment="dev"), rules) is None
    assert apply_rules(_event(service="test-a", status="failure"), rules) is None
    assert apply_rules(_event(service="test-a", status="success"), rules) is not None


def test_promotion_order_fills_parent_from_the_store():
    """Prod without parents gets the latest staging success of the same sha."""
    rules = RulesConfig(promotion={"*": ["dev", "staging", "prod"]})
    calls = []

    def lookup(service, env, sha):
        calls.append((service, env, sha))
        return "stg-9" if env == "staging" else None

    [out] = fill_parents([_event(environment="prod", sha="abc")], rules, lookup)
    assert out.parent_deployments == ("stg-9",)
    assert calls == [("api", "staging", "abc")]


def test_promotion_order_sees_successes_earlier_in_the_same_page():
    """A dev success and a staging start in one page are linked without the store."""
    rules = RulesConfig(promotion={"api": ["dev", "staging"]})
    dev = _event(deployment_id="dev-1", environment="dev", sha="abc")
    stg = _event(deployment_id="stg-1", environment="staging", sha="abc", status="in-progress")
    out = fill_parents([dev, stg], rules, lambda *_: None)
    assert out[0].parent_deployments == ()
    assert out[1].parent_deployments == ("dev-1",)


def test_promotion_keeps_parents_given_by_the_adapter():
    """An adapter's own parents are never overwritten."""
    rules = RulesConfig(promotion={"*": ["dev", "prod"]})
    event = _event(environment="prod", sha="abc", parent_deployments=["x"])
    assert fill_parents([event], rules, lambda *_: "y")[0].parent_deployments == ("x",)


def test_a_template_that_fails_at_runtime_keeps_the_name_and_logs_once():
    """Any template error (here an attribute lookup) keeps the name; two events give one warning."""
    from structlog.testing import capture_logs

    rules = RulesConfig(service=NameRule.model_construct(rename={}, template="{service.x}"))
    with capture_logs() as logs:
        names = [apply_rules(_event(deployment_id=f"d{n}"), rules).service for n in range(2)]
    assert ["api", "api"] == names
    assert 1 == sum(log["event"] == "rules.template_failed" for log in logs)


def test_broken_templates_and_empty_renames_are_config_errors():
    """`{repo.upper()}`, an unclosed brace, or a rename to "" are refused when the config loads."""
    import pytest
    from pydantic import ValidationError

    for template in ("{repo_name.upper()}", "{service", "{0}"):
        with pytest.raises(ValidationError, match="not a usable template"):
            NameRule(template=template)
    with pytest.raises(ValidationError, match="empty name"):
        NameRule(rename={"legacy": " "})


def test_a_rename_to_an_invalid_name_keeps_the_event_as_it_was():
    """A rename that would break the contract (empty) is logged and the original names are kept."""
    rules = RulesConfig(environment=NameRule.model_construct(rename={"production": ""}))
    event = apply_rules(_event(), rules)
    assert "production" == event.environment
