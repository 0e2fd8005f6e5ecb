"""The systemd unit for VM installs: runs the daemon as an unprivileged, sandboxed service."""

import configparser
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from tests.deploy._paths import SYSTEMD_UNIT
from tests.deploy._unitfile import parse

CONFIG = "/etc/deploy-fetcher/config.yaml"
#: The daemon's default ``--grace``; systemd must wait longer than that before SIGKILL.
GRACE_SECONDS = 20


@pytest.fixture(scope="module")
def unit() -> dict[str, dict[str, list[str]]]:
    return parse(SYSTEMD_UNIT.read_text(encoding="utf-8"))


def _one(unit, section: str, key: str) -> str:
    values = unit[section].get(key, [])
    assert 1 == len(values), f"{section}.{key} = {values}"
    return values[0]


def test_the_unit_parses_with_configparser():
    """The file is well-formed INI: sections Unit, Service, Install, nothing else."""
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str
    parser.read_string(SYSTEMD_UNIT.read_text(encoding="utf-8"))
    assert ["Unit", "Service", "Install"] == parser.sections()
    assert "multi-user.target" == parser["Install"]["WantedBy"]


def test_exec_start_runs_the_daemon_on_the_documented_config(unit):
    """ExecStart is ``fetcher run --config /etc/deploy-fetcher/config.yaml`` by absolute path."""
    from deploy_fetcher.cli import build_parser

    argv = shlex.split(_one(unit, "Service", "ExecStart"))
    assert Path(argv[0]).is_absolute()
    assert "fetcher" == Path(argv[0]).name
    assert ["run", "--config", CONFIG] == argv[1:]
    build_parser().parse_args(argv[1:])  # the CLI accepts exactly these arguments
    check = shlex.split(_one(unit, "Service", "ExecStartPre"))
    assert [argv[0], "check", "--offline", "--config", CONFIG] == check
    build_parser().parse_args(check[1:])


def test_state_and_config_directories_are_managed_by_systemd(unit):
    """The state file lives in StateDirectory; the config directory matches ExecStart's path."""
    service = unit["Service"]
    assert ["deploy-fetcher"] == service["StateDirectory"]
    assert [str(Path(CONFIG).parent.name)] == service["ConfigurationDirectory"]
    env = dict(v.split("=", 1) for v in service["Environment"])
    assert "%S/deploy-fetcher/state.db" == env["FETCHER_STATE__PATH"]
    assert "1" == env["PYTHONUNBUFFERED"]


def test_secrets_come_from_a_root_only_environment_file(unit):
    """Secrets are loaded from EnvironmentFile, never written into the unit."""
    assert ["-/etc/deploy-fetcher/secrets.env"] == unit["Service"]["EnvironmentFile"]
    text = SYSTEMD_UNIT.read_text(encoding="utf-8")
    assert None is re.search(r"(?im)^Environment=.*(token|api_key|secret|password)", text)


def test_the_service_is_hardened(unit):
    """The sandboxing keys are set to their strict values."""
    service = {k: v[-1] if v else "" for k, v in unit["Service"].items()}
    expected = {
        "DynamicUser": "yes",
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "PrivateDevices": "yes",
        "ProtectKernelTunables": "yes",
        "ProtectKernelModules": "yes",
        "ProtectControlGroups": "yes",
        "RestrictSUIDSGID": "yes",
        "RestrictNamespaces": "yes",
        "LockPersonality": "yes",
        "SystemCallArchitectures": "native",
        "CapabilityBoundingSet": "",
        "UMask": "0077",
    }
    assert expected == {key: service.get(key) for key in expected}
    assert {"AF_INET", "AF_INET6", "AF_UNIX"} == set(service["RestrictAddressFamilies"].split())


def test_stop_and_restart_policy_fit_the_daemon(unit):
    """SIGTERM, a stop timeout above the grace period, restart on failure but not on a bad config."""
    service = unit["Service"]
    assert ["SIGTERM"] == service["KillSignal"]
    timeout = re.fullmatch(r"(\d+)s?", _one(unit, "Service", "TimeoutStopSec"))
    assert timeout is not None
    assert GRACE_SECONDS < int(timeout.group(1)) <= GRACE_SECONDS + 30
    assert ["on-failure"] == service["Restart"]
    assert ["2"] == service["RestartPreventExitStatus"]


@pytest.fixture
def installable_unit(tmp_path) -> Path:
    """The unit with the venv's ``fetcher`` in place of /opt/deploy-fetcher/bin/fetcher."""
    fetcher = Path(sys.executable).with_name("fetcher")
    if not fetcher.exists():
        pytest.skip("the fetcher console script is not installed in this environment")
    text = SYSTEMD_UNIT.read_text(encoding="utf-8")
    path = tmp_path / SYSTEMD_UNIT.name
    path.write_text(text.replace("/opt/deploy-fetcher/bin/fetcher", str(fetcher)), encoding="utf-8")
    return path


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_systemd_accepts_the_unit_and_rates_it_well_sandboxed(installable_unit):
    """``systemd-analyze verify`` finds no problem; the offline security score stays under 2.0."""
    verify = subprocess.run(
        ["systemd-analyze", "verify", str(installable_unit)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert "" == verify.stderr.strip()
    assert 0 == verify.returncode
    security = subprocess.run(
        ["systemd-analyze", "security", "--offline=yes", "--threshold=20", str(installable_unit)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    if "--offline" in security.stderr:
        pytest.skip("this systemd-analyze has no offline security mode")
    assert 0 == security.returncode, security.stdout[-400:]


def test_unit_parser_accumulates_repeated_keys_and_resets_on_empty():
    """Repeated keys accumulate; ``Key=`` empties the list; a backslash becomes a space."""
    text = "[Service]\nA=1\nA=2\nB=x\nB=\nC=one\\\n  two\n"
    assert {"Service": {"A": ["1", "2"], "B": [], "C": ["one two"]}} == parse(text)


def test_unit_parser_refuses_keys_outside_a_section():
    """A key before any section header is an error."""
    with pytest.raises(ValueError, match="line 1"):
        parse("A=1\n")
