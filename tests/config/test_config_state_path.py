"""``state.path`` is anchored to the configuration file, so every command finds the same state."""

from __future__ import annotations

from pathlib import Path

import pytest

from deploy_fetcher.plugins import load_config


def _write(directory: Path, text: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "fetcher.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_relative_state_path_is_resolved_against_the_config_files_directory(
    tmp_path, monkeypatch
):
    """Loaded from another working directory, a relative path still lands beside the file."""
    config_file = _write(tmp_path / "etc", "state: {path: data/state.db}\n")
    monkeypatch.chdir(tmp_path)
    assert tmp_path / "etc" / "data" / "state.db" == load_config(config_file, environ={}).state.path


def test_the_default_state_path_lives_beside_the_config_file(tmp_path, monkeypatch):
    """Without state.path the default file name is placed in the config file's directory."""
    config_file = _write(tmp_path / "conf", "")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    expected = tmp_path / "conf" / "fetcher-state.db"
    assert expected == load_config(config_file, environ={}).state.path


def test_a_config_path_given_relative_still_anchors_the_state(tmp_path, monkeypatch):
    """``--config conf/fetcher.yaml`` (relative) gives an absolute state path all the same."""
    _write(tmp_path / "conf", "state: {path: s.db}\n")
    monkeypatch.chdir(tmp_path)
    path = load_config(Path("conf/fetcher.yaml"), environ={}).state.path
    assert (True, tmp_path / "conf" / "s.db") == (path.is_absolute(), path)


def test_an_absolute_state_path_is_kept(tmp_path):
    """An absolute path is used as written."""
    target = tmp_path / "var" / "state.db"
    config_file = _write(tmp_path / "etc", f"state: {{path: {target}}}\n")
    assert target == load_config(config_file, environ={}).state.path


@pytest.mark.parametrize("value", ["rel/state.db", "state.db"])
def test_a_relative_path_from_the_environment_is_read_against_the_working_directory(
    tmp_path, monkeypatch, value
):
    """FETCHER_STATE__PATH=rel/state.db means the working directory, as any path in a variable."""
    config_file = _write(tmp_path / "etc", "state: {path: ignored.db}\n")
    monkeypatch.chdir(tmp_path)
    config = load_config(config_file, environ={"FETCHER_STATE__PATH": value})
    assert tmp_path / value == config.state.path
