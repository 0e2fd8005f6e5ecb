"""One name per idea across GitHub, GitLab, Azure DevOps and the sinks, each checked on the real models.

Rows: ``tls_verify``, ``retries``, ``open_max``, ``timeout`` (with the old names answered "did you
mean"), ``service`` and ``service_map`` (with the deprecated ``services`` and ``service_template``
still taken, with a warning), the error a plugin raises when handed another plugin's config, and a
name template naming an unknown field. Cursor commits per page and shared clients have their tests beside each provider.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from deploy_fetcher.config import DefaultsConfig, SinkConfig, SourceConfig
from deploy_fetcher.errors import ConfigError, PluginError
from deploy_fetcher.metrics import Metrics
from deploy_fetcher.plugins import load_provider, load_sink, parse_config
from deploy_fetcher.providers import ProviderContext
from deploy_fetcher.sinks import SinkContext

#: The smallest valid source of each provider built on the kit.
SOURCES = {
    "github": "token: t0ken, repos: [octo/app]",
    "gitlab": "url: https://gitlab.example.com, token: t0ken, projects: [group/app]",
    "azure-devops": "organization_url: https://dev.azure.com/org, pat: t0ken, projects: [shop]",
}
#: Each provider's name template, and a field it does not offer.
TEMPLATES = {
    "github": "service: '{repo}-{colour}'",
    "gitlab": "service: '{project_path}-{colour}'",
    "azure-devops": "service: '{pipeline}-{colour}'",
}
#: The service keys a provider used to spell otherwise, still taken for now: (old, new, value).
DEPRECATED = {
    "gitlab": ("services", "service_map", "{group/app: storefront}"),
    "azure-devops": ("service_template", "service", "'{pipeline}-svc'"),
}
#: Sinks that speak HTTP, with their smallest valid entry.
HTTP_SINKS = {
    "deployment-dashboard": "url: https://dash.example.com, api_key: k3y",
    "webhook": "url: https://hooks.example.com/d",
    "cloudlink": "url: https://cloudlink.example.com, api_key: k3y",
    "ctoai": "url: https://events.example.com, api_key: k3y, team_id: t3am",
}


def _source(provider: str, keys: str = "") -> Any:
    extra = f", {keys}" if keys else ""
    text = f"sources:\n  - {{name: ci, provider: {provider}, {SOURCES[provider]}{extra}}}\n"
    return parse_config(text, environ={}).sources[0]


def _sink(kind: str, keys: str = "") -> Any:
    extra = f", {keys}" if keys else ""
    text = f"sinks:\n  - {{name: out, type: {kind}, {HTTP_SINKS[kind]}{extra}}}\n"
    return parse_config(text, environ={}).sinks[0]


def _refused(parse: Any, *args: str) -> str:
    with pytest.raises(ConfigError) as caught:
        parse(*args)
    return str(caught.value)


@pytest.mark.parametrize("provider", SOURCES)
def test_every_provider_takes_the_same_http_keys(provider: str) -> None:
    """tls_verify, retries and timeout mean the same for every provider."""
    source = _source(provider, "tls_verify: false, retries: 1, timeout: 7s")
    assert (False, 1, timedelta(seconds=7)) == (source.tls_verify, source.retries, source.timeout)


@pytest.mark.parametrize("provider", ["github", "azure-devops"])
def test_providers_with_an_open_set_bound_it_with_open_max(provider: str) -> None:
    """The open-item cap is open_max wherever there is an open set (GitLab has none)."""
    assert 7 == _source(provider, "open_max: 7").open_max


@pytest.mark.parametrize("provider", SOURCES)
def test_every_provider_takes_service_and_service_map(provider: str) -> None:
    """One pair of service keys, with one default and one template field for the short name."""
    default = _source(provider)
    source = _source(provider, "service: '{repo_name}-{environment}', service_map: {'a*': b}")
    assert ("{repo_name}", {}, "{repo_name}-{environment}", {"a*": "b"}) == (
        default.service,
        default.service_map,
        source.service,
        source.service_map,
    )


def _loaded(provider: str, keys: str) -> Any:
    text = f"sources:\n  - {{name: ci, provider: {provider}, {SOURCES[provider]}, {keys}}}\n"
    return parse_config(text, environ={})


@pytest.mark.parametrize("provider", DEPRECATED)
def test_a_deprecated_service_key_still_works_with_one_warning(provider: str) -> None:
    """The old key's value lands on the new key; loading warns once, naming the new key."""
    old, new, value = DEPRECATED[provider]
    config = _loaded(provider, f"{old}: {value}")
    assert (
        _source(provider, f"{new}: {value}").model_dump() == config.sources[0].model_dump(),
        [
            f"<string>: sources[0].{old}: deprecated key: use {new} instead ({old} still works for now)"
        ],
    ) == (True, [warning.line() for warning in config.warnings])


@pytest.mark.parametrize("provider", DEPRECATED)
def test_a_deprecated_key_set_to_null_keeps_the_default(provider: str) -> None:
    """``service_template: null`` (as older examples wrote it) is the default, with the warning."""
    old, new, _ = DEPRECATED[provider]
    config = _loaded(provider, f"{old}: null")
    assert (getattr(_source(provider), new), 1) == (
        getattr(config.sources[0], new),
        len(config.warnings),
    )


@pytest.mark.parametrize("provider", DEPRECATED)
def test_an_old_and_a_new_service_key_together_are_refused(provider: str) -> None:
    """Both names of one key is an error at the old key's path, naming the key to keep."""
    old, new, value = DEPRECATED[provider]
    message = _refused(_source, provider, f"{old}: {value}, {new}: {value}")
    assert f"<string>: sources[0].{old}: give {new} only ({old} is its deprecated old name)" == (
        message
    )


def test_a_current_configuration_loads_without_warnings() -> None:
    """Warnings are for deprecated keys only: a file using the current keys has none."""
    assert () == _loaded("gitlab", "service_map: {group/app: x}").warnings


@pytest.mark.parametrize("provider", SOURCES)
@pytest.mark.parametrize(
    ("typo", "meant"),
    [("servce_map", "service_map"), ("service_maps", "service_map"), ("servise", "service")],
)
def test_a_misspelt_service_key_is_answered_with_the_right_one(
    provider: str, typo: str, meant: str
) -> None:
    """A typo of either service key gets "did you mean" with the key every provider takes."""
    message = _refused(_source, provider, f"{typo}: x")
    assert f"<string>: sources[0].{typo}: unknown key (did you mean '{meant}'?)" == message


@pytest.mark.parametrize(
    ("old", "new"), [("services", "service_map"), ("service_template", "service")]
)
def test_another_provider_old_service_key_is_answered_with_the_new_one(old: str, new: str) -> None:
    """GitHub never took GitLab's or Azure DevOps' old names: they are refused with the new one."""
    message = _refused(_source, "github", f"{old}: x")
    assert f"<string>: sources[0].{old}: renamed key (did you mean '{new}'?)" == message


@pytest.mark.parametrize("kind", HTTP_SINKS)
def test_every_http_sink_takes_tls_verify_and_timeout(kind: str) -> None:
    """The sinks spell TLS verification and the timeout as the providers do."""
    sink = _sink(kind, "tls_verify: false, timeout: 7s")
    assert (False, timedelta(seconds=7)) == (sink.tls_verify, sink.timeout)


@pytest.mark.parametrize("provider", SOURCES)
@pytest.mark.parametrize(
    ("old", "new"),
    [("verify", "tls_verify"), ("verify_tls", "tls_verify"), ("max_retries", "retries")],
)
def test_an_old_provider_key_is_answered_with_the_new_one(
    provider: str, old: str, new: str
) -> None:
    """A key a provider used to spell otherwise is refused with the name that replaced it."""
    message = _refused(_source, provider, f"{old}: 1")
    assert f"<string>: sources[0].{old}: renamed key (did you mean '{new}'?)" == message


@pytest.mark.parametrize(
    ("provider", "old", "new"),
    [
        ("github", "max_open", "open_max"),
        ("azure-devops", "max_open", "open_max"),
        ("gitlab", "per_page", "page_size"),
        ("azure-devops", "per_page", "page_size"),
    ],
)
def test_an_old_name_is_answered_where_the_provider_has_the_key(
    provider: str, old: str, new: str
) -> None:
    """The open-item cap and the page size answer their old names where a provider takes them."""
    message = _refused(_source, provider, f"{old}: 10")
    assert f"<string>: sources[0].{old}: renamed key (did you mean '{new}'?)" == message


@pytest.mark.parametrize(("provider", "old"), [("gitlab", "max_open"), ("github", "per_page")])
def test_an_old_name_is_not_answered_with_a_key_the_provider_lacks(provider: str, old: str) -> None:
    """GitLab has no open set and GitHub no page size: their old names are plain unknown keys."""
    message = _refused(_source, provider, f"{old}: 10")
    assert (True, False) == (": unknown key (" in message, "renamed key" in message)


@pytest.mark.parametrize("kind", HTTP_SINKS)
@pytest.mark.parametrize("old", ["verify", "verify_tls"])
def test_an_old_tls_key_of_a_sink_is_answered_with_tls_verify(kind: str, old: str) -> None:
    """A sink, which never spelt it otherwise, points the providers' old TLS names to tls_verify."""
    message = _refused(_sink, kind, f"{old}: false")
    assert f"<string>: sinks[0].{old}: unknown key (did you mean 'tls_verify'?)" == message


@pytest.mark.parametrize("provider", SOURCES)
def test_an_unknown_template_field_is_refused_at_load(provider: str) -> None:
    """A name template naming a field its provider does not offer fails at load, listing the offer."""
    message = _refused(_source, provider, TEMPLATES[provider])
    assert "uses unknown field(s) ['colour']; available: [" in message


@pytest.mark.parametrize("provider", SOURCES)
def test_a_provider_handed_another_config_raises_plugin_error(provider: str) -> None:
    """Every provider says which config model it needs, with one error type."""
    stranger = SourceConfig(name="ci", provider=provider)
    context = ProviderContext(metrics=Metrics(), defaults=DefaultsConfig())
    with pytest.raises(PluginError, match=r"is needed, got SourceConfig \(source 'ci'\)"):
        load_provider(provider)(stranger, context)


@pytest.mark.parametrize("kind", [*HTTP_SINKS, "stdout"])
def test_a_sink_handed_another_config_raises_plugin_error(kind: str) -> None:
    """Every sink says which config model it needs, with the providers' error type."""
    stranger = SinkConfig(name="out", type=kind)
    context = SinkContext(metrics=Metrics(), user_agent="test")
    with pytest.raises(PluginError, match=r"is needed, got SinkConfig \(sink 'out'\)"):
        load_sink(kind)(stranger, context)
