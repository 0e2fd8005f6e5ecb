"""What a container would see: its mounted files and environment, recreated under a temp dir.

The deployment files name absolute paths (``/etc/fetcher/config.yaml``, ``/run/secrets/…``). To load
their config through the real loader without a container, every mount is written under a temporary
root and every absolute path that points into a mount is rewritten to its copy.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["PodFiles"]


@dataclass
class PodFiles:
    """Mounts recreated under ``root``: container path → host path."""

    root: Path
    mounts: dict[str, Path] = field(default_factory=dict)

    def mount(self, container_path: str, files: Mapping[str, str] | None = None) -> Path:
        """Create the directory standing in for ``container_path``, with ``files`` in it."""
        host = self.root / container_path.strip("/")
        host.mkdir(parents=True, exist_ok=True)
        for name, content in (files or {}).items():
            (host / name).write_text(content, encoding="utf-8")
        self.mounts[container_path.rstrip("/")] = host
        return host

    def mount_file(self, container_path: str, content: str) -> Path:
        """A single file mounted at ``container_path`` (a docker bind mount of one file)."""
        parent, _, name = container_path.rpartition("/")
        host = self.root / parent.strip("/")
        host.mkdir(parents=True, exist_ok=True)
        (host / name).write_text(content, encoding="utf-8")
        self.mounts[container_path] = host / name
        return host / name

    def host_path(self, container_path: str) -> Path:
        """Where a container path lives here (KeyError when no mount covers it)."""
        for mounted in sorted(self.mounts, key=len, reverse=True):
            if container_path == mounted or container_path.startswith(mounted + "/"):
                return Path(str(self.mounts[mounted]) + container_path[len(mounted) :])
        raise KeyError(container_path)

    def rewrite(self, text: str) -> str:
        """Replace every mounted container path in ``text`` with its host path, in one pass.

        One pass, because a host path may itself start with a mounted path (``/tmp/…``).
        """
        if not self.mounts:
            return text
        alternatives = "|".join(re.escape(m) for m in sorted(self.mounts, key=len, reverse=True))
        pattern = re.compile(rf"(?<![\w./-])({alternatives})(?=/|$|[^\w.-])")
        return pattern.sub(lambda match: str(self.mounts[match.group(1)]), text)

    def environ(self, env: Mapping[str, str]) -> dict[str, str]:
        """The container's environment with its paths rewritten."""
        return {key: self.rewrite(value) for key, value in env.items()}
