"""Webhook authenticity: GitHub's HMAC signature, GitLab's token, Azure DevOps' basic authentication."""

from __future__ import annotations

import base64

import pytest
from pydantic import SecretStr

from deploy_fetcher.config import NudgesConfig
from deploy_fetcher.nudges import verifiers

# GitHub's own test vector ("Testing the webhook payload validation"): github/docs,
# content/webhooks/using-webhooks/validating-webhook-deliveries.md @ d28b3fb221c2a9f06671b440a6105ae4b103d05b
GITHUB_SECRET = "It's a Secret to Everybody"
GITHUB_BODY = b"Hello, World!"
GITHUB_SIGNATURE = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"


def _config(**providers: object) -> NudgesConfig:
    return NudgesConfig.model_validate({"enabled": True, **providers})


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_github_documented_signature_is_accepted() -> None:
    """The signature GitHub documents for its test secret and body verifies."""
    verify = verifiers(_config(github={"secret": GITHUB_SECRET}))["github"]
    assert verify({"x-hub-signature-256": GITHUB_SIGNATURE}, GITHUB_BODY) is True


@pytest.mark.parametrize(
    ("signature", "body"),
    [
        (GITHUB_SIGNATURE, b"Hello, World?"),  # the body was changed
        (GITHUB_SIGNATURE.removeprefix("sha256="), GITHUB_BODY),  # no algorithm prefix
        ("sha1=" + GITHUB_SIGNATURE.removeprefix("sha256="), GITHUB_BODY),  # another algorithm
        ("sha256=757107ea", GITHUB_BODY),  # a prefix of the right digest
        ("", GITHUB_BODY),
    ],
)
def test_github_signature_that_does_not_match_is_refused(signature: str, body: bytes) -> None:
    """A changed body, a truncated digest or another algorithm's header does not verify."""
    verify = verifiers(_config(github={"secret": GITHUB_SECRET}))["github"]
    assert verify({"x-hub-signature-256": signature}, body) is False


def test_github_previous_secret_verifies_during_a_rotation() -> None:
    """While a secret is rotated, deliveries signed with the previous one are accepted too."""
    verify = verifiers(
        _config(github={"secret": "the-new-secret", "previous_secret": GITHUB_SECRET})
    )["github"]
    assert verify({"x-hub-signature-256": GITHUB_SIGNATURE}, GITHUB_BODY) is True


def test_gitlab_token_must_be_equal() -> None:
    """GitLab's X-Gitlab-Token is accepted when it equals the secret token, and only then."""
    verify = verifiers(_config(gitlab={"token": "gl-hook-token"}))["gitlab"]
    assert [True, False, False, False] == [
        verify({"x-gitlab-token": "gl-hook-token"}, b"{}"),
        verify({"x-gitlab-token": "gl-hook-toke"}, b"{}"),
        verify({"x-gitlab-token": ""}, b"{}"),
        verify({}, b"{}"),
    ]


def test_azure_devops_basic_authentication() -> None:
    """Azure DevOps' basic authentication needs the user name and the password (or the previous one)."""
    verify = verifiers(
        _config(
            azure_devops={"username": "hooks", "password": "p4ss", "previous_password": "old-pass"}
        )
    )["azure-devops"]
    assert [True, True, False, False, False, False] == [
        verify({"authorization": _basic("hooks", "p4ss")}, b"{}"),
        verify({"authorization": _basic("hooks", "old-pass")}, b"{}"),
        verify({"authorization": _basic("other", "p4ss")}, b"{}"),
        verify({"authorization": _basic("hooks", "wrong")}, b"{}"),
        verify({"authorization": "Basic not*base64"}, b"{}"),
        verify({"authorization": "Bearer p4ss"}, b"{}"),
    ]


def test_only_configured_providers_get_a_check() -> None:
    """A provider without a section has no endpoint: nothing from it can verify."""
    assert ["gitlab"] == sorted(verifiers(_config(gitlab={"token": SecretStr("t0ken")})))


def test_enabled_without_any_provider_is_a_configuration_error() -> None:
    """Turning nudges on without saying whom to trust is refused at start-up."""
    with pytest.raises(ValueError, match="no provider is configured"):
        NudgesConfig.model_validate({"enabled": True})
