"""Check the locked runtime dependencies (requirements.lock) against known vulnerabilities.

Two ways, the same report:

* ``scripts/audit.py`` runs pip-audit against the lock (``pip install pip-audit`` first). It asks
  the public advisory service; where that service cannot be reached (an offline CI runner, an
  air-gapped network) the audit is **skipped** with a message saying so, exit 0 (``--strict``:
  exit 3), so an offline build is never mistaken for a clean one.
* ``scripts/audit.py --advisories DIR`` needs no network: DIR is a local copy of the OSV advisories
  of the PyPI ecosystem (the ``PyPI/all.zip`` export of the OSV database, unpacked: one JSON
  document per advisory). A locked ``name==version`` listed in an advisory's affected versions is
  reported.

Exit codes: 0 nothing known, 1 vulnerable packages found, 2 bad usage or an audit that could not
run, 3 skipped under ``--strict``. See docs/operations.md, "Supply chain".
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "requirements.lock"
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)")
#: What pip-audit prints when it cannot reach the advisory service (requests' connection errors).
_UNREACHABLE = re.compile(
    r"ConnectionError|ConnectTimeout|Max retries exceeded|Name or service not known|"
    r"Temporary failure in name resolution|Network is unreachable|Connection refused",
)


@dataclass(frozen=True)
class Finding:
    """One locked package named by one advisory."""

    package: str
    version: str
    advisory: str
    summary: str


def normalize(name: str) -> str:
    """A project name as PyPI compares them (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def locked(lock: Path) -> dict[str, str]:
    """``name -> version`` of every pin in a pip-compile lock file."""
    pins: dict[str, str] = {}
    for line in lock.read_text(encoding="utf-8").splitlines():
        match = _PIN.match(line.strip())
        if match:
            pins[normalize(match.group(1))] = match.group(2)
    return pins


def _advisories(directory: Path) -> Iterator[dict[str, object]]:
    for path in sorted(directory.rglob("*.json")):
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            print(f"audit: skipping unreadable advisory {path}: {exc}", file=sys.stderr)
            continue
        if isinstance(document, dict):
            yield document


def offline_findings(
    pins: dict[str, str], advisories: Iterable[dict[str, object]]
) -> list[Finding]:
    """Every pin an OSV advisory lists among its affected PyPI versions."""
    found: list[Finding] = []
    for advisory in advisories:
        affected = advisory.get("affected")
        if not isinstance(affected, list):
            continue
        for entry in affected:
            package = entry.get("package", {}) if isinstance(entry, dict) else {}
            if not isinstance(package, dict) or package.get("ecosystem") != "PyPI":
                continue
            name = normalize(str(package.get("name", "")))
            versions = entry.get("versions", [])
            if name in pins and isinstance(versions, list) and pins[name] in versions:
                found.append(
                    Finding(
                        name,
                        pins[name],
                        str(advisory.get("id", "?")),
                        str(advisory.get("summary", "")).strip(),
                    )
                )
    return sorted(set(found), key=lambda f: (f.package, f.advisory))


def report(findings: list[Finding], checked: int) -> int:
    """Print the findings; the exit code (0 none, 1 some)."""
    if not findings:
        print(f"audit: {checked} locked packages, no known vulnerability")
        return 0
    for finding in findings:
        summary = f" - {finding.summary}" if finding.summary else ""
        print(f"{finding.package}=={finding.version}: {finding.advisory}{summary}")
    print(f"audit: {len(findings)} known vulnerabilities in {checked} locked packages")
    return 1


def online(lock: Path, *, strict: bool) -> int:
    """pip-audit against the lock; a skip (with its reason) when the service is out of reach."""
    with tempfile.TemporaryDirectory() as scratch:
        output = Path(scratch) / "report.json"
        try:
            result = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "pip_audit",
                    "--requirement",
                    str(lock),
                    "--require-hashes",
                    "--disable-pip",
                    "--progress-spinner",
                    "off",
                    "--format",
                    "json",
                    "--output",
                    str(output),
                ],
                capture_output=True,
                text=True,
                timeout=600,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return _skipped("the advisory service did not answer within 10 minutes", strict)
        if "No module named pip_audit" in result.stderr:
            print("audit: pip-audit is not installed here (pip install pip-audit)", file=sys.stderr)
            return 2
        if not output.exists():
            if _UNREACHABLE.search(result.stderr):
                return _skipped("the advisory service cannot be reached from here", strict)
            print(f"audit: pip-audit failed:\n{result.stderr.strip()}", file=sys.stderr)
            return 2
        data = json.loads(output.read_text(encoding="utf-8"))
    findings = [
        Finding(normalize(dep["name"]), dep["version"], vuln["id"], vuln.get("description", ""))
        for dep in data.get("dependencies", [])
        for vuln in dep.get("vulns", [])
    ]
    return report(findings, len(data.get("dependencies", [])))


def _skipped(reason: str, strict: bool) -> int:
    print(
        f"audit: SKIPPED, {reason}; nothing was checked. Run it where the service is reachable, "
        "or pass --advisories DIR with a local copy of the OSV PyPI advisories.",
        file=sys.stderr,
    )
    return 3 if strict else 0


def main(argv: list[str] | None = None) -> int:
    """Command line: see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lock", type=Path, default=LOCK, help="default: requirements.lock")
    parser.add_argument(
        "--advisories", type=Path, help="a local copy of the OSV PyPI advisories (no network)"
    )
    parser.add_argument(
        "--strict", action="store_true", help="exit 3 instead of 0 when the audit is skipped"
    )
    args = parser.parse_args(argv)
    if not args.lock.is_file():
        print(f"audit: no lock file at {args.lock}", file=sys.stderr)
        return 2
    if args.advisories is None:
        return online(args.lock, strict=args.strict)
    if not args.advisories.is_dir():
        print(f"audit: {args.advisories} is not a directory of advisories", file=sys.stderr)
        return 2
    pins = locked(args.lock)
    return report(offline_findings(pins, _advisories(args.advisories)), len(pins))


if __name__ == "__main__":
    sys.exit(main())
