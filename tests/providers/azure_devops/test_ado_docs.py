"""docs/providers/azure_devops.md stays true to the code it describes."""

from __future__ import annotations

import re
from pathlib import Path

from deploy_fetcher.config import SourceConfig
from deploy_fetcher.providers.azure_devops import AzureDevOpsConfig

ROOT = Path(__file__).resolve().parents[3]
DOC = (ROOT / "docs" / "providers" / "azure_devops.md").read_text(encoding="utf-8")
SOURCE = ROOT / "src" / "deploy_fetcher" / "providers" / "azure_devops"
KIT = ROOT / "src" / "deploy_fetcher" / "providers" / "kit"


def test_every_configuration_key_is_documented():
    """Each key of the adapter's own config model has a row in the keys table."""
    own = set(AzureDevOpsConfig.model_fields) - set(SourceConfig.model_fields)
    first_cells = re.findall(r"^\| ([^|]+) \|", DOC, re.MULTILINE)
    rows = {key for cell in first_cells for key in re.findall(r"`([a-z_]+)`", cell)}
    assert set() == own - rows


def test_every_documented_log_event_is_emitted():
    """The log events the guide names are the ones the code logs."""
    documented = set(re.findall(r"`(azure_devops\.[a-z_]+)`", DOC))
    code = "\n".join(p.read_text(encoding="utf-8") for p in SOURCE.glob("*.py"))
    kit = "\n".join(p.read_text(encoding="utf-8") for p in KIT.glob("*.py"))
    emitted = set(re.findall(r'"(azure_devops\.[a-z_]+)"', code)) | {
        f"azure_devops.{name}" for name in re.findall(r'f"{(?:self\.)?log_name}\.([a-z_]+)"', kit)
    }
    assert (documented, True) == (documented & emitted, len(documented) >= 6)
