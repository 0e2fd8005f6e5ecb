"""The limits one request lives under: a whole-request deadline, a byte cap, a redirect rule.

The deadline and the redirect rule are :mod:`deploy_fetcher.netlimits`, shared with the sinks: the
transports attach the sockets they use to the current deadline, and its watchdog shuts them down when
it passes, so a server that trickles its answer cannot hold a request; the transport turns that
failure into :class:`~deploy_fetcher.providers.kit.DeadlineExceeded`. :func:`check_redirect` applies
the one redirect rule (the path may change, ``http`` may become ``https`` on the same host; another
host, port or ``https`` → ``http`` is refused before the client follows it, so no credential ever
reaches another host) and raises the kit's :class:`RedirectRefused`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final
from urllib.parse import urljoin, urlsplit

from deploy_fetcher.netlimits import display_url, redirect_refusal
from deploy_fetcher.providers.kit._errors import RedirectRefused

__all__ = ["Limits", "check_redirect"]

_FIX: Final = "point the source's URL at the final address"


@dataclass(frozen=True)
class Limits:
    """How long one request may take (seconds, start to last byte) and how much it may read."""

    timeout: float
    max_bytes: int


def _origin(url: str) -> str:
    parts = urlsplit(url)
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname or ''}{port}"


def check_redirect(url: str, status: int, location: str | None) -> None:
    """Refuse a redirect that leaves the origin of ``url`` (see the module docstring).

    Raises :class:`RedirectRefused` naming both hosts; returns for anything else (a redirect to the
    same origin, an https upgrade on the same host, or not a redirect at all).
    """
    refusal = redirect_refusal(url, status, location, fix=_FIX)
    if refusal is None or location is None:
        return
    target = urljoin(url, location.strip())
    raise RedirectRefused(refusal, url=display_url(url), target=_origin(target))
