"""The image is built from hash-locked dependencies on a digest-pinned base; the lock can be audited."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from tests.deploy._dockerfile import parse_file

ROOT = Path(__file__).resolve().parents[2]
LOCK = ROOT / "requirements.lock"
BUILD_LOCK = ROOT / "requirements-build.lock"
AUDIT = ROOT / "scripts" / "audit.py"


def _entries(lock: Path) -> dict[str, list[str]]:
    """``name -> [hashes]`` of a pip-compile lock (names normalised)."""
    entries: dict[str, list[str]] = {}
    name = ""
    for line in lock.read_text(encoding="utf-8").splitlines():
        pin = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==\S+", line)
        if pin:
            name = re.sub(r"[-_.]+", "-", pin.group(1)).lower()
            entries[name] = []
        for digest in re.findall(r"--hash=sha256:([0-9a-f]{64})", line):
            entries[name].append(digest)
    return entries


def _requirement_names(requirements: list[str]) -> set[str]:
    return {
        re.sub(r"[-_.]+", "-", re.match(r"[A-Za-z0-9._-]+", r).group(0)).lower()  # type: ignore[union-attr]
        for r in requirements
    }


def test_every_runtime_dependency_is_locked_with_hashes() -> None:
    """Each dependency of pyproject (and the postgres extra) is pinned, every pin with a sha256."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    wanted = _requirement_names(
        project["dependencies"] + project["optional-dependencies"]["postgres"]
    )
    entries = _entries(LOCK)
    assert set() == wanted - set(entries)
    assert [] == [name for name, hashes in entries.items() if not hashes]


def test_the_build_backend_is_locked_with_hashes() -> None:
    """The [build-system] backend is pinned with hashes too (the build stage uses no isolation)."""
    backend = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["build-system"]
    entries = _entries(BUILD_LOCK)
    assert set() == _requirement_names(backend["requires"]) - set(entries)
    assert [] == [name for name, hashes in entries.items() if not hashes]


def test_the_image_installs_only_hash_checked_dependencies_on_a_digest_pinned_base() -> None:
    """The build stage reads both locks with --require-hashes; every stage's base has a digest."""
    dockerfile = parse_file(ROOT / "Dockerfile")
    build = dockerfile.stages[0]
    runs = " ".join(run.args for run in build.all("RUN"))
    assert "--require-hashes --no-deps -r requirements-build.lock" in runs
    assert "--require-hashes --no-deps -r requirements.lock" in runs
    assert "--no-build-isolation" in runs
    assert all(re.search(r"@sha256:[0-9a-f]{64}$", stage.base) for stage in dockerfile.stages)


def _lock(tmp_path: Path) -> Path:
    lock = tmp_path / "requirements.lock"
    lock.write_text(
        "requests==2.31.0 \\\n    --hash=sha256:" + "a" * 64 + "\n"
        "PyYAML==6.0.1 \\\n    --hash=sha256:" + "b" * 64 + "\n",
        encoding="utf-8",
    )
    return lock


def _advisory(directory: Path, ident: str, name: str, versions: list[str]) -> None:
    directory.mkdir(exist_ok=True)
    document = {
        "schema_version": "1.6.0",
        "id": ident,
        "summary": f"{name} does something unsafe",
        "affected": [{"package": {"ecosystem": "PyPI", "name": name}, "versions": versions}],
    }
    (directory / f"{ident}.json").write_text(json.dumps(document), encoding="utf-8")


def _audit(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(AUDIT), *args], capture_output=True, text=True, timeout=60, check=False
    )


def test_the_offline_audit_reports_a_locked_version_an_advisory_names(tmp_path: Path) -> None:
    """A local OSV advisory naming a locked name==version is reported, exit 1."""
    advisories = tmp_path / "osv"
    _advisory(advisories, "PYSEC-0000-1", "Requests", ["2.30.0", "2.31.0"])
    _advisory(advisories, "PYSEC-0000-2", "pyyaml", ["5.3"])
    result = _audit("--lock", str(_lock(tmp_path)), "--advisories", str(advisories))
    assert 1 == result.returncode
    assert [
        "requests==2.31.0: PYSEC-0000-1 - Requests does something unsafe",
        "audit: 1 known vulnerabilities in 2 locked packages",
    ] == result.stdout.splitlines()


def test_the_offline_audit_passes_when_no_advisory_names_a_locked_version(tmp_path: Path) -> None:
    """Advisories for other versions only: nothing to report, exit 0."""
    advisories = tmp_path / "osv"
    _advisory(advisories, "PYSEC-0000-3", "pyyaml", ["5.3", "5.4"])
    result = _audit("--lock", str(_lock(tmp_path)), "--advisories", str(advisories))
    assert (0, "audit: 2 locked packages, no known vulnerability\n") == (
        result.returncode,
        result.stdout,
    )


@pytest.mark.skipif(
    importlib.util.find_spec("pip_audit") is not None, reason="pip-audit is installed here"
)
def test_the_online_audit_without_pip_audit_says_how_to_get_it(tmp_path: Path) -> None:
    """Without pip-audit the online audit says what to install (exit 2), never a silent pass."""
    result = _audit("--lock", str(_lock(tmp_path)))
    assert 2 == result.returncode
    assert "pip-audit is not installed here (pip install pip-audit)" in result.stderr
