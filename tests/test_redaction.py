"""One redaction registry masks every credential form in every output: errors, readiness, the CLI."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

from deploy_fetcher.engine.health import Health
from deploy_fetcher.errors import SourceError
from deploy_fetcher.providers.azure_devops.auth import BearerFileAuth, PatAuth
from deploy_fetcher.redaction import (
    MAX_EXCERPT,
    RedactingWriter,
    excerpt,
    redact,
    register_secret,
)


def test_a_secret_is_masked_in_its_url_and_json_forms() -> None:
    """A server quoting the credential in a query string or a JSON string gives nothing away."""
    register_secret("s3cr+t/value&more")
    assert "q=*** j=***" == redact("q=s3cr%2Bt%2Fvalue%26more j=s3cr+t/value&more")
    register_secret('quote"d-secret')
    assert '{"echo": "***"}' == redact(json.dumps({"echo": 'quote"d-secret'}))


def test_an_error_s_text_is_masked_wherever_it_is_shown() -> None:
    """str() of a fetcher error masks a credential echoed into it, registered before or after."""
    error = SourceError("HTTP 500: upstream said token=late-registered-9f1c")
    register_secret("late-registered-9f1c")
    assert "HTTP 500: upstream said token=***" == str(error)


def test_readiness_problems_are_masked() -> None:
    """/readyz serves its problems masked: a paused sink's reason quoting the key shows ***."""
    register_secret("sink-key-for-readiness-71a0")
    health = Health()
    health.sink_paused("dash", "HTTP 401: key sink-key-for-readiness-71a0 is not valid")
    assert ["sink dash: HTTP 401: key *** is not valid"] == [
        p for p in health.problems() if p.startswith("sink")
    ]


def test_the_azure_devops_basic_header_is_registered_when_built() -> None:
    """The Basic header built from a PAT, and its base64 alone, are masked once the auth exists."""
    pat = "ado-pat-for-basic-header-3b9d"
    encoded = base64.b64encode(f":{pat}".encode()).decode()
    assert encoded in redact(f"echo: Basic {encoded}")  # nobody registered the header yet
    PatAuth(pat)
    assert "echo: ***" == redact(f"echo: Basic {encoded}")
    assert "alone: ***" == redact(f"alone: {encoded}")


def test_a_bearer_token_re_read_from_its_file_is_registered(tmp_path: Path) -> None:
    """Each token read from bearer_token_file is masked, the rotated one too."""
    path = tmp_path / "token"
    path.write_text("first-bearer-token-0a1b\n", encoding="utf-8")
    auth = BearerFileAuth(path)
    auth.header()
    path.write_text("rotated-bearer-token-longer-2c3d\n", encoding="utf-8")
    auth.refresh()
    assert "*** then ***" == redact("first-bearer-token-0a1b then rotated-bearer-token-longer-2c3d")


def test_an_excerpt_is_one_short_masked_line() -> None:
    """A server's body becomes one line of at most MAX_EXCERPT characters, the cut marked."""
    register_secret("excerpt-secret-55e1")
    body = b"<html>\n\x1b[31mdenied\x1b[0m for excerpt-secret-55e1\r\n" + b"y" * 10_000
    text = excerpt(body)
    assert text.startswith("<html> [31mdenied [0m for *** yyy")
    assert MAX_EXCERPT == len(text)
    assert text.endswith("…")
    assert "\n" not in text
    assert "\x1b" not in text


def test_an_excerpt_masks_a_secret_that_straddles_the_cut() -> None:
    """A secret crossing the excerpt's end leaves no readable head behind."""
    secret = "straddling-secret-value-8d2e"
    register_secret(secret)
    text = excerpt("a" * (MAX_EXCERPT - 10) + secret)
    assert "stradd" not in text


def test_the_cli_writer_masks_a_secret_written_in_pieces() -> None:
    """Output written in two pieces (no newline between) is still masked as one line."""
    register_secret("piecewise-secret-4f4f")
    out = io.StringIO()
    writer = RedactingWriter(out)
    writer.write("value: piecewise-")
    writer.write("secret-4f4f\nnext")
    writer.flush()
    assert "value: ***\nnext" == out.getvalue()


def test_the_password_of_a_database_url_is_masked_alone() -> None:
    """A DSN registered whole also masks its password, which a driver's error may quote alone."""
    register_secret("postgresql://fetcher:pg-p%40ss-9a9a@db:5432/state")
    assert 'password "***" was refused, and ***' == redact(
        'password "pg-p@ss-9a9a" was refused, and pg-p%40ss-9a9a'
    )


def test_a_database_url_masks_its_passwords_and_nothing_else() -> None:
    """A DSN shows which database it names: only its passwords (user part, query) are masked."""
    register_secret("postgresql://fetcher@db-plain:5432/state")
    register_secret(
        "postgresql://fetcher:pw-in-user-5c1d@db-a:5432/state?password=pw-in-query-77ab"
    )
    register_secret("postgres://fetcher@db-b/state?sslmode=require&sslpassword=key-pw-3e3e")

    assert (
        "state database postgresql://fetcher@db-plain:5432/state: refused;"
        " postgresql://fetcher:***@db-a:5432/state?password=*** key ***"
    ) == redact(
        "state database postgresql://fetcher@db-plain:5432/state: refused;"
        " postgresql://fetcher:pw-in-user-5c1d@db-a:5432/state?password=pw-in-query-77ab"
        " key key-pw-3e3e"
    )


def test_every_readiness_problem_is_masked_whoever_reports_it(tmp_path: Path) -> None:
    """A provider's own readiness problem quoting its token reaches /readyz as ***."""
    from deploy_fetcher.config import FetcherConfig, SourceConfig
    from deploy_fetcher.engine import Runtime
    from deploy_fetcher.providers import Provider

    class Quoting(Provider):
        name = "quoting"

        def targets(self) -> list[str]:
            return []

        def poll(self, target, cursor):
            return iter(())

        def backfill(self, target, since, until):
            return iter(())

        def ready_problems(self) -> list[str]:
            return ["rate limited; the server said: token plugin-token-5d5d is throttled"]

    register_secret("plugin-token-5d5d")
    config = FetcherConfig.model_validate({"state": {"path": str(tmp_path / "s.db")}})
    config = config.model_copy(update={"sources": [SourceConfig(name="q", provider="quoting")]})
    runtime = Runtime(config, provider_resolver=lambda _name: Quoting)
    try:
        problems = runtime.ready_problems()
    finally:
        runtime.close()
    assert "source q: rate limited; the server said: token *** is throttled" in problems
