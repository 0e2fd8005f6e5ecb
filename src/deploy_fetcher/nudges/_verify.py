"""Whether a webhook request comes from the CI system it claims: one check per provider.

* GitHub signs each delivery: ``X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the raw body, keyed
  with the webhook's secret>``;
* GitLab sends the webhook's secret token as is, in ``X-Gitlab-Token``;
* Azure DevOps service hooks send the subscription's basic authentication (``Authorization: Basic``).

Every comparison is constant-time (:func:`hmac.compare_digest`) and against each accepted secret in
turn (the current one and, during a rotation, the previous one). Nothing here logs or returns a
secret, or says which part of a credential was wrong.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Callable, Mapping, Sequence

from pydantic import SecretStr

from deploy_fetcher.config import NudgesConfig

__all__ = ["Verifier", "verifiers"]

#: Checks one request: its headers (lower-case names) and raw body; True when it is authentic.
Verifier = Callable[[Mapping[str, str], bytes], bool]

_SHA256_PREFIX = "sha256="


def _secrets(*values: SecretStr | None) -> tuple[bytes, ...]:
    return tuple(v.get_secret_value().encode() for v in values if v is not None)


def github_verifier(secrets: Sequence[bytes]) -> Verifier:
    """``X-Hub-Signature-256`` must be the HMAC-SHA256 of the body under one of ``secrets``."""

    def verify(headers: Mapping[str, str], body: bytes) -> bool:
        signature = headers.get("x-hub-signature-256", "")
        if not signature.startswith(_SHA256_PREFIX):
            return False
        sent = signature.removeprefix(_SHA256_PREFIX).strip().lower().encode()
        return any(
            hmac.compare_digest(hmac.new(secret, body, hashlib.sha256).hexdigest().encode(), sent)
            for secret in secrets
        )

    return verify


def gitlab_verifier(tokens: Sequence[bytes]) -> Verifier:
    """``X-Gitlab-Token`` must be one of ``tokens``."""

    def verify(headers: Mapping[str, str], _body: bytes) -> bool:
        sent = headers.get("x-gitlab-token", "").encode()
        return bool(sent) and any(hmac.compare_digest(token, sent) for token in tokens)

    return verify


def basic_verifier(username: str, passwords: Sequence[bytes]) -> Verifier:
    """``Authorization: Basic`` must carry ``username`` and one of ``passwords``."""
    user = username.encode()

    def verify(headers: Mapping[str, str], _body: bytes) -> bool:
        scheme, _, value = headers.get("authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            decoded = base64.b64decode(value.strip(), validate=True)
        except (binascii.Error, ValueError):
            return False
        sent_user, colon, sent_password = decoded.partition(b":")
        if not colon:
            return False
        # Both halves are always compared, so the time taken does not tell which one was wrong.
        user_ok = hmac.compare_digest(user, sent_user)
        password_ok = any(hmac.compare_digest(p, sent_password) for p in passwords)
        return user_ok and password_ok

    return verify


def verifiers(config: NudgesConfig) -> dict[str, Verifier]:
    """The check of each provider the configuration enables nudges from, by provider name."""
    out: dict[str, Verifier] = {}
    if config.github is not None:
        out["github"] = github_verifier(
            _secrets(config.github.secret, config.github.previous_secret)
        )
    if config.gitlab is not None:
        out["gitlab"] = gitlab_verifier(_secrets(config.gitlab.token, config.gitlab.previous_token))
    if config.azure_devops is not None:
        ado = config.azure_devops
        out["azure-devops"] = basic_verifier(
            ado.username, _secrets(ado.password, ado.previous_password)
        )
    return out
