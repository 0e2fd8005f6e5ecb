"""`fetcher check` on good and broken configurations, as a real subprocess."""

from __future__ import annotations

import pytest
from tests.support import run_cli

GOOD = """\
state: {path: STATE}
defaults: {interval: 30s}
sinks:
  - name: dashboard
    type: deployment-dashboard
    url: http://127.0.0.1:9/
    api_key: ${DASH_KEY}
sources:
  - name: scripted
    provider: scripted
    script: SCRIPT
"""


@pytest.fixture
def write(tmp_path):
    def _write(text: str):
        path = tmp_path / "config.yaml"
        path.write_text(
            text.replace("STATE", str(tmp_path / "s.db")).replace(
                "SCRIPT", str(tmp_path / "e.jsonl")
            ),
            encoding="utf-8",
        )
        return path

    return _write


def test_a_good_config_passes_offline(write):
    """A valid configuration is reported ok and exits 0 without any request."""
    result = run_cli("check", "--offline", "--config", str(write(GOOD)), env={"DASH_KEY": "k1234"})
    assert (0, "configuration ok: 1 source, 1 sink") == (result.returncode, result.stdout.strip())


@pytest.mark.parametrize(
    ("mutation", "path", "words"),
    [
        (
            ("defaults: {interval: 30s}", "defaults: {interval: 30s, intervall: 1m}"),
            "defaults.intervall",
            "unknown key",
        ),
        (
            ("defaults: {interval: 30s}", "defaults: {interval: 30 sec}"),
            "defaults.interval",
            "duration",
        ),
        (
            ("api_key: ${DASH_KEY}", "api_key: ${NOT_SET_ANYWHERE}"),
            "sinks[0].api_key",
            "NOT_SET_ANYWHERE",
        ),
        (("url: http://127.0.0.1:9/", "url: ftp//nowhere"), "sinks[0].url", "URL"),
        (("provider: scripted", "provider: jenkins"), "sources[0].provider", "jenkins"),
    ],
)
def test_broken_configs_exit_2_with_one_line_naming_the_yaml_path(write, mutation, path, words):
    """Each broken config exits 2, prints no traceback, and names the YAML path of the problem."""
    text = GOOD.replace(*mutation)
    result = run_cli("check", "--offline", "--config", str(write(text)), env={"DASH_KEY": "k1234"})
    first = result.stderr.strip().splitlines()[0]
    assert 2 == result.returncode
    assert "Traceback" not in result.stderr
    assert path in first
    assert words.lower() in result.stderr.lower()


def test_missing_config_file_is_a_clear_error(tmp_path):
    """A config path that does not exist exits 2 naming the file."""
    result = run_cli("check", "--config", str(tmp_path / "nope.yaml"))
    assert 2 == result.returncode
    assert "nope.yaml" in result.stderr
    assert "Traceback" not in result.stderr


def test_online_check_reports_an_unreachable_sink(write):
    """Without --offline the dashboard is contacted; a closed port makes the check fail with exit 1."""
    result = run_cli("check", "--config", str(write(GOOD)), env={"DASH_KEY": "k1234"})
    assert 1 == result.returncode
    assert "sink dashboard" in result.stdout
    assert "k1234" not in result.stdout + result.stderr


def test_version_flag():
    """`fetcher --version` prints the package version."""
    from deploy_fetcher import __version__

    result = run_cli("--version")
    assert (0, f"deploy-fetcher {__version__}") == (result.returncode, result.stdout.strip())


def test_every_problem_line_has_the_same_prefix(write):
    """Several problems print one line each, every one as `fetcher: FILE: PATH: message`."""
    text = GOOD.replace("defaults: {interval: 30s}", "defaults: {interval: 30 sec, jitter: x}")
    text = text.replace("api_key: ${DASH_KEY}", "api_key: ${NOT_SET_ANYWHERE}")
    path = write(text)
    result = run_cli("check", "--offline", "--config", str(path))
    lines = result.stderr.strip().splitlines()
    assert 2 == result.returncode
    assert [f"fetcher: {path}: defaults.interval", f"fetcher: {path}: defaults.jitter",
            f"fetcher: {path}: sinks[0].api_key"] == [": ".join(line.split(": ")[:3]) for line in lines]  # fmt: skip


#: A GitLab source naming its services with the key's deprecated old name.
OLD_SERVICE_KEY = """\
  - name: gitlab
    provider: gitlab
    url: https://gitlab.example.com
    token: t0ken-gitlab
    projects: [acme/api]
    services: {acme/api: api-gateway}
"""


def test_a_deprecated_key_is_a_warning_row_and_the_check_passes(write):
    """`services` still loads: exit 0, one WARNING row naming the path and the new key."""
    path = write(GOOD + OLD_SERVICE_KEY)
    result = run_cli("check", "--offline", "--config", str(path), env={"DASH_KEY": "k1234"})
    rows = [line.split() for line in result.stdout.splitlines() if "WARNING" in line]
    assert (
        0,
        [["sources[1].services", "WARNING", "deprecated", "key:", "use", "service_map"]],
    ) == (
        result.returncode,
        [row[:6] for row in rows],
    )


def test_an_old_and_a_new_key_together_exit_2_naming_the_path(write):
    """`services` beside `service_map` is refused at the old key's YAML path, without a traceback."""
    both = OLD_SERVICE_KEY + "    service_map: {acme/api: api}\n"
    result = run_cli(
        "check", "--offline", "--config", str(write(GOOD + both)), env={"DASH_KEY": "k"}
    )
    first = result.stderr.strip().splitlines()[0]
    assert (2, True, False) == (
        result.returncode,
        first.endswith(
            "sources[1].services: give service_map only (services is its deprecated old name)"
        ),
        "Traceback" in result.stderr,
    )
