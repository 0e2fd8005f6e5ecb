"""deploy-fetcher: pulls deployment activity out of CI systems and forwards it to deployment dashboards.

The public surface is small on purpose: the canonical event, the plugin interfaces a third party
implements (a provider or a sink), and the errors they raise. Everything else is implementation.
"""

from deploy_fetcher._version import __version__
from deploy_fetcher.errors import (
    AuthError,
    ConfigError,
    FetcherError,
    RateLimited,
    SourceError,
    TargetNotFound,
    TransientError,
)
from deploy_fetcher.model import DeployEvent, Status
from deploy_fetcher.providers import Cursor, Page, Provider, ProviderContext
from deploy_fetcher.sinks import (
    CheckResult,
    Delivered,
    Delivery,
    Rejected,
    Retry,
    Sink,
    SinkContext,
    Unauthorized,
)

__all__ = [
    "AuthError",
    "CheckResult",
    "ConfigError",
    "Cursor",
    "Delivered",
    "Delivery",
    "DeployEvent",
    "FetcherError",
    "Page",
    "Provider",
    "ProviderContext",
    "RateLimited",
    "Rejected",
    "Retry",
    "Sink",
    "SinkContext",
    "SourceError",
    "Status",
    "TargetNotFound",
    "TransientError",
    "Unauthorized",
    "__version__",
]
