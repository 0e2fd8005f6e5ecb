"""The committed configuration reference is the one the models generate."""

from __future__ import annotations

from pathlib import Path

from scripts.config_reference import main, render

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def test_committed_reference_is_current():
    """docs/configuration.md equals the rendering of the models (regenerate it after a change)."""
    assert render() == DOC.read_text(encoding="utf-8")


def test_every_core_field_is_documented():
    """No row of the reference lacks a description."""
    rows = [line for line in render().splitlines() if line.startswith("| `")]
    assert [] == [row for row in rows if row.rstrip().endswith("|  |")]


def test_main_writes_the_file(tmp_path: Path):
    """The generator writes the reference to the file it is given."""
    target = tmp_path / "configuration.md"
    assert (0, render()) == (main([str(target)]), target.read_text(encoding="utf-8"))
