"""Property: whatever YAML tree the file holds, the loader returns a config or raises ConfigError."""

from __future__ import annotations

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from deploy_fetcher.config import (
    DefaultsConfig,
    FetcherConfig,
    Filter,
    NameRule,
    RulesConfig,
    ServerConfig,
    SinkConfig,
    SourceConfig,
    StateConfig,
    parse_config,
)
from deploy_fetcher.errors import ConfigError

_MODELS = (FetcherConfig, StateConfig, ServerConfig, DefaultsConfig, RulesConfig, NameRule, Filter)
_KNOWN = sorted(
    {name for model in (*_MODELS, SourceConfig, SinkConfig) for name in model.model_fields}
    | {"repos", "url", "token", "app", "app_id", "private_key", "*"}
)
# Random keys stay short, so they can never spell a ``<secret>_file`` key and read a real file.
_KEYS = st.sampled_from(_KNOWN) | st.text(max_size=6)
_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()
    | st.text(max_size=12)
    | st.sampled_from(
        ["1m", "0s", "repo", "hook", "http://x.test", "${X}", "${MISSING}", "$${", "${", "success"]
    )
)
_TREES = st.recursive(
    _SCALARS,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(_KEYS, children, max_size=5),
    max_leaves=30,
)
_FILES = st.dictionaries(
    st.sampled_from(list(FetcherConfig.model_fields)) | _KEYS, _TREES, max_size=7
)


def _outcome(text: str, file: str, environ: dict[str, str], resolvers) -> object:
    """The loaded configuration, or the ConfigError raised (any other exception propagates)."""
    try:
        return parse_config(text, file=file, environ=environ, **resolvers)
    except ConfigError as error:
        return error


def _names_its_path(error: ConfigError, file: str) -> bool:
    first = str(error).splitlines()[0]
    return first.startswith(file) and error.path in first


@settings(max_examples=300, deadline=None)
@given(tree=_FILES)
def test_any_tree_gives_a_config_or_a_config_error(tree, resolvers):
    """Random trees give a FetcherConfig or a ConfigError whose first line names its path."""
    outcome = _outcome(yaml.safe_dump(tree), "f.yaml", {"X": "1"}, resolvers)
    if isinstance(outcome, ConfigError):
        assert _names_its_path(outcome, "f.yaml")
    else:
        assert isinstance(outcome, FetcherConfig)


@settings(max_examples=100, deadline=None)
@given(entries=st.lists(st.dictionaries(_KEYS, _TREES, max_size=6), max_size=4))
def test_any_source_entries_give_a_config_or_a_config_error(entries, resolvers):
    """Random source entries give a FetcherConfig or a ConfigError naming its path."""
    text = yaml.safe_dump({"sources": [{"provider": "repo", **entry} for entry in entries]})
    outcome = _outcome(text, "s.yaml", {}, resolvers)
    if isinstance(outcome, ConfigError):
        assert _names_its_path(outcome, "s.yaml")
    else:
        assert isinstance(outcome, FetcherConfig)
