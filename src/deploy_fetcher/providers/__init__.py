"""Provider adapters: one package per CI system, each registered as a ``deploy_fetcher.providers`` entry point."""

from deploy_fetcher.providers._base import (
    CheckItem,
    Cursor,
    Page,
    Provider,
    ProviderContext,
    Reread,
    SharedResources,
)

__all__ = [
    "CheckItem",
    "Cursor",
    "Page",
    "Provider",
    "ProviderContext",
    "Reread",
    "SharedResources",
]
