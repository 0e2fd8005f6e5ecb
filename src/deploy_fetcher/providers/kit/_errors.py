"""What the kit raises when an upstream answer breaks a limit, and how a provider asks for a retry.

Every class is one of :mod:`deploy_fetcher.errors`, so the engine needs to know none of them::

    SourceError
    ├── RedirectRefused     a 3xx to another host, port or scheme (or https → http): never followed
    └── TransientError
        ├── DeadlineExceeded    no complete answer within the request's deadline
        └── ResponseTooLarge    the answer is longer than the byte cap

:class:`Retry` is not an error of the taxonomy: a provider's classification raises it inside
:meth:`~deploy_fetcher.providers.kit.RequestPolicy.call` to say "this attempt failed, another may
succeed"; when no attempt is left, its ``failure`` is raised instead.
"""

from __future__ import annotations

from deploy_fetcher.errors import SourceError, TransientError

__all__ = ["DeadlineExceeded", "RedirectRefused", "ResponseTooLarge", "Retry"]


class DeadlineExceeded(TransientError):
    """The whole request (connect, send, every byte of the answer) took longer than its deadline."""

    def __init__(self, url: str, seconds: float) -> None:
        super().__init__(f"{url}: no complete answer within {seconds:g}s (the request's deadline)")
        self.url = url
        self.seconds = seconds


class ResponseTooLarge(TransientError):
    """The answer went on past the byte cap; what was read is dropped."""

    def __init__(self, url: str, limit: int) -> None:
        super().__init__(
            f"{url}: the answer is larger than {limit} bytes (max_response_size); not read further"
        )
        self.url = url
        self.limit = limit


class RedirectRefused(SourceError):
    """A redirect to another origin: following it could hand the credential to another host.

    The message names both hosts (:func:`deploy_fetcher.netlimits.redirect_refusal`); ``url`` is the
    request's, ``target`` the origin it was sent to (``https://other.example:8443``).
    """

    def __init__(self, message: str, *, url: str, target: str) -> None:
        super().__init__(message)
        self.url = url
        self.target = target


class Retry(Exception):
    """One attempt failed in a way another attempt may not; ``failure`` is raised when none is left.

    ``after`` is the wait the server asked for (``Retry-After``), None to use the policy's back-off.
    """

    def __init__(self, failure: SourceError, *, after: float | None = None) -> None:
        super().__init__(str(failure))
        self.failure = failure
        self.after = after
