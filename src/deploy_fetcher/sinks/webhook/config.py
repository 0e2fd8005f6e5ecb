"""The ``webhook`` sink's keys."""

from __future__ import annotations

import re
from typing import Final

from pydantic import SecretStr, field_validator

from deploy_fetcher.sinks._document import DocumentField
from deploy_fetcher.sinks.http import HttpSinkConfig, check_url

__all__ = ["RESERVED_HEADERS", "WebhookConfig"]

_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
#: Headers the sink sets itself; a static header may not replace them.
RESERVED_HEADERS: Final = frozenset(
    {
        "content-type",
        "content-length",
        "host",
        "x-deploy-fetcher-signature",
        "x-deploy-fetcher-event-id",
    }
)


class WebhookConfig(HttpSinkConfig):
    """Any receiver: a URL, static headers, an optional signing secret, an optional field list.

    The URL is a secret too (``url_file`` works), because many receivers put their token in it.
    """

    url: SecretStr
    #: Static headers; values are secrets (masked in logs), e.g. ``Authorization: Bearer ${TOKEN}``.
    headers: dict[str, SecretStr] = {}
    #: Signs each body with HMAC-SHA256 (``secret_file`` works as well); see docs/sinks.md.
    secret: SecretStr | None = None
    #: Which fields of the canonical document to send, in this order; all when absent.
    fields: list[DocumentField] | None = None

    @field_validator("url")
    @classmethod
    def _url(cls, value: SecretStr) -> SecretStr:
        return SecretStr(check_url(value.get_secret_value()))

    @field_validator("headers")
    @classmethod
    def _headers(cls, value: dict[str, SecretStr]) -> dict[str, SecretStr]:
        for name, secret in value.items():
            if not _TOKEN.match(name):
                msg = f"{name!r} is not a valid header name"
                raise ValueError(msg)
            if name.lower() in RESERVED_HEADERS:
                msg = f"{name} is set by the sink itself"
                raise ValueError(msg)
            if any(char in secret.get_secret_value() for char in "\r\n\0"):
                msg = f"the value of {name} contains a line break"
                raise ValueError(msg)
        return value

    @field_validator("fields")
    @classmethod
    def _fields(cls, value: list[DocumentField] | None) -> list[DocumentField] | None:
        if value is not None and not value:
            msg = "list at least one field, or leave fields out to send them all"
            raise ValueError(msg)
        if value is not None and len(set(value)) != len(value):
            msg = "a field is listed twice"
            raise ValueError(msg)
        return value
