"""Credentials for PyGithub: a token as is, or a GitHub App installation token renewed ahead of expiry.

PyGithub's own ``AppInstallationAuth`` renews a token only 20 seconds before it expires, on the wall
clock. A poll cycle that pages through a large repository can take longer than that, and tests must be
able to move time; so this class renews ``token_refresh_margin`` (default 5 minutes) ahead, on the
clock the adapter is given, and still uses PyGithub for the JWT and the token exchange.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import requests
from github import Auth, GithubException, GithubIntegration
from github.Requester import Requester

from deploy_fetcher.errors import AuthError, TransientError
from deploy_fetcher.providers.github.config import GitHubConfig
from deploy_fetcher.redaction import register_secret

__all__ = ["InstallationTokenAuth", "build_auth"]

_HTTP_SERVER_ERROR = 500


class InstallationTokenAuth(Auth.Auth):
    """Authenticates as a GitHub App installation; thread-safe, shared by every source of that app."""

    def __init__(
        self,
        *,
        app_id: int,
        private_key: str,
        installation_id: int,
        base_url: str,
        timeout: int,
        verify: bool | str,
        margin: timedelta,
        clock: Callable[[], datetime],
    ) -> None:
        self.app_id = app_id
        self.installation_id = installation_id
        self._integration = GithubIntegration(
            auth=Auth.AppAuth(app_id, private_key),
            base_url=base_url,
            timeout=timeout,
            verify=verify,
            retry=None,
            seconds_between_requests=None,
            seconds_between_writes=None,
        )
        self._margin = margin
        self._clock = clock
        self._lock = threading.Lock()
        self._token: str | None = None
        self._expires_at: datetime | None = None
        #: How many installation tokens were obtained (for tests and the debug log).
        self.tokens_issued = 0

    @property
    def token_type(self) -> str:
        """GitHub takes installation tokens as ``token <value>``."""
        return "token"

    @property
    def token(self) -> str:
        """A valid installation token, renewed when it is within the margin of its expiry."""
        with self._lock:
            now = self._clock()
            if (
                self._token is None
                or self._expires_at is None
                or self._expires_at - self._margin <= now
            ):
                self._renew()
            assert self._token is not None  # noqa: S101 - _renew sets it or raises
            return self._token

    @property
    def expires_at(self) -> datetime | None:
        """When the current token expires (None before the first one)."""
        return self._expires_at

    def _renew(self) -> None:
        try:
            grant = self._integration.get_access_token(self.installation_id)
        except GithubException as exc:
            if exc.status >= _HTTP_SERVER_ERROR:
                msg = (
                    f"GitHub could not issue an installation token (HTTP {exc.status}); will retry"
                )
                raise TransientError(msg) from None
            msg = (
                f"GitHub App {self.app_id} could not get a token for installation "
                f"{self.installation_id} (HTTP {exc.status}): check the app id, private key and "
                "installation id"
            )
            raise AuthError(msg) from None
        except requests.RequestException as exc:
            msg = f"cannot reach GitHub to renew the installation token: {type(exc).__name__}"
            raise TransientError(msg) from None
        expires = grant.expires_at
        if expires.tzinfo is None:
            expires = expires.replace(tzinfo=UTC)
        register_secret(grant.token)
        self._token = grant.token
        self._expires_at = expires.astimezone(UTC)
        self.tokens_issued += 1

    @property
    def requester(self) -> Requester:
        """The token exchange's requester (the request policy is mounted on it)."""
        return self._integration.requester

    @property
    def _masked_token(self) -> str:
        return "token (installation token removed)"

    def close(self) -> None:
        """Close the token exchange's connection."""
        self._integration.close()


def build_auth(
    config: GitHubConfig,
    *,
    timeout: int,
    verify: bool | str,
    clock: Callable[[], datetime],
    police: Callable[[Requester], None] = lambda _requester: None,
) -> Auth.Auth:
    """The PyGithub auth object for a source's credential.

    ``police`` puts the request policy on the token exchange's own requester (an App's).
    """
    if config.app is not None:
        auth = InstallationTokenAuth(
            app_id=config.app.app_id,
            private_key=config.app.private_key.get_secret_value(),
            installation_id=config.app.installation_id,
            base_url=config.base_url,
            timeout=timeout,
            verify=verify,
            margin=config.token_refresh_margin,
            clock=clock,
        )
        police(auth.requester)
        return auth
    assert config.token is not None  # noqa: S101 - the config validator guarantees one credential
    return Auth.Token(config.token.get_secret_value())
