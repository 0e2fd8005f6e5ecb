"""Name templates: checked once at load time, rendered the same way by every provider."""

from __future__ import annotations

import pytest

from deploy_fetcher.providers.kit import check_template, render_template

FIELDS = ("project", "environment", "ref")


@pytest.mark.parametrize(
    ("template", "words"),
    [
        ("{projekt}", "unknown field(s) ['projekt']; available: ['environment', 'project', 'ref']"),
        ("{}", "use named fields"),
        ("{0}", "use named fields"),
        ("{project.name}", "use named fields"),
        ("{project", "does not parse"),
        ("  ", "must not be empty"),
    ],
)
def test_a_bad_template_is_refused_at_load(template: str, words: str) -> None:
    """Unknown, positional or attribute fields and broken braces name the problem."""
    with pytest.raises(ValueError, match=r".") as caught:
        check_template(template, FIELDS)
    assert words in str(caught.value)


def test_a_field_without_a_value_renders_empty() -> None:
    """A known field with no value for this item renders empty; the result is stripped."""
    assert "api" == render_template("{project} {ref}", {"project": "api", "ref": None})


def test_a_good_template_renders_its_fields() -> None:
    """Fields are filled from the values; other values are ignored."""
    template = check_template("{project}-{environment}", FIELDS)
    assert "api-prod" == render_template(
        template, {"project": "api", "environment": "prod", "x": "y"}
    )
