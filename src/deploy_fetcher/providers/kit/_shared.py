"""One request policy per credential, shared by every source that uses it.

The quota belongs to the credential (GitHub and GitLab count per user, Azure DevOps per identity):
sources of one credential share it whatever else they configure. The policy (deadline, byte cap,
retries) belongs to the credential and those settings: sources that set them differently get a
policy each, on the one quota.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

from deploy_fetcher.providers.kit._policy import RequestPolicy
from deploy_fetcher.providers.kit._quota import Quota, RequestBudget

if TYPE_CHECKING:
    from deploy_fetcher.config import HttpSourceConfig
    from deploy_fetcher.providers._base import ProviderContext

__all__ = ["credential_digest", "shared_policy"]


def credential_digest(*material: object) -> str:
    """A short digest that tells credentials apart without revealing them (keys, never shown)."""
    return hashlib.sha256(repr(material).encode()).hexdigest()[:16]


def shared_policy(
    config: HttpSourceConfig,
    context: ProviderContext,
    *,
    provider: str,
    credential: str,
    label: str | None = None,
    budget: RequestBudget | None = None,
    **quota: Any,
) -> RequestPolicy:
    """The request policy of a source's credential (``credential``: its :func:`credential_digest`).

    ``quota`` are the :class:`Quota` knobs of the provider (``share``, ``reserve``, ``low_water``);
    ``label`` names the credential in metrics and readiness (default: the first source's name).
    """
    name = label or config.name
    max_wait = config.max_rate_limit_wait.total_seconds()
    knobs = sorted(quota.items())
    shared = context.shared.get(
        f"{provider}:quota:{credential}:{knobs}",
        lambda: Quota(
            provider=provider,
            label=name,
            metrics=context.metrics,
            clock=context.clock,
            max_pause=max_wait,
            **quota,
        ),
    )
    limits = RequestPolicy.limits_of(config, context.defaults)
    paced = budget.limit if budget is not None else None
    return context.shared.get(
        f"{provider}:policy:{credential}:{knobs}:{limits}:{config.retries}:{max_wait}:{paced}",
        lambda: RequestPolicy(
            provider=provider,
            label=name,
            context=context,
            limits=limits,
            retries=config.retries,
            max_wait=max_wait,
            quota=shared,
            budget=budget,
        ),
    )
