"""Runs a benchmark script once per size, each in a fresh process, so peak RSS is per size."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from typing import Any


def run_sizes(script: str, sizes: list[int], page_size: int) -> Iterator[dict[str, Any]]:
    """Yield the JSON row ``script --one --events N --page-size P`` prints, for each size."""
    for count in sizes:
        out = subprocess.run(
            [
                sys.executable,
                script,
                "--one",
                "--events",
                str(count),
                "--page-size",
                str(page_size),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        yield json.loads(out.stdout.strip().splitlines()[-1])
