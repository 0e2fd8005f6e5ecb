"""Provider adapters: one package per CI system, each registered as a ``deploy_fetcher.providers`` entry point."""

from deploy_fetcher.providers._base import Cursor, Page, Provider, ProviderContext, SharedResources

__all__ = ["Cursor", "Page", "Provider", "ProviderContext", "SharedResources"]
