"""The kit's public surface is one curated list, complete and sorted."""

from __future__ import annotations

import importlib
import pkgutil

from deploy_fetcher.providers import kit


def test_every_public_name_of_the_private_modules_is_exported() -> None:
    """What a private module offers in its ``__all__`` is reachable from the kit itself."""
    offered = set()
    for module in pkgutil.iter_modules(kit.__path__):
        loaded = importlib.import_module(f"{kit.__name__}.{module.name}")
        offered |= set(getattr(loaded, "__all__", ()))
    assert set() == offered - set(kit.__all__)


def test_the_surface_is_sorted_and_importable() -> None:
    """``__all__`` is sorted (constants first, as ruff orders it) and every name resolves."""
    assert (
        sorted(kit.__all__, key=lambda n: (not n.isupper(), not n[0].isupper(), n)) == kit.__all__
    )
    assert all(getattr(kit, name, None) is not None for name in kit.__all__)
