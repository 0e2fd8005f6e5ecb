"""A CLI an operator can script: global options anywhere, JSON output, durations, exit codes."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from tests.support import run_cli, write_config

from deploy_fetcher.cli import build_parser
from deploy_fetcher.cli._completion import command_tree, render
from deploy_fetcher.emulators._server import Fault
from deploy_fetcher.emulators.dashboard import DashboardEmulator

KEY = "cli-scripting-key"
RESET_ALL = ("state", "reset", "--all", "--config")
T0 = datetime(2026, 2, 1, tzinfo=UTC)


@pytest.fixture
def dashboard():
    emulator = DashboardEmulator(api_key=KEY)
    emulator.start()
    yield emulator
    emulator.stop()


def _script(path: Path, days: int = 6) -> Path:
    lines = [
        {
            "deployment_id": f"d{day}",
            "service": "api",
            "environment": "production",
            "status": "success",
            "happened_at": (T0 + timedelta(days=day)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        for day in range(days)
    ]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    return path


@pytest.fixture
def setup(tmp_path, dashboard) -> Path:
    """A config whose state path is relative (beside the file) and a scripted source."""
    conf = tmp_path / "conf"
    conf.mkdir()
    return write_config(
        conf / "fetcher.yaml",
        {
            "state": {"path": "state.db"},
            "rules": {"environment": {"rename": {"production": "prod"}}},
            "sources": [
                {"name": "replay", "provider": "scripted", "script": str(_script(tmp_path / "e"))}
            ],
            "sinks": [
                {
                    "name": "dashboard",
                    "type": "deployment-dashboard",
                    "url": dashboard.url(),
                    "api_key": KEY,
                    "backoff_initial": "50ms",
                    "backoff_max": "200ms",
                }
            ],
        },
    )


def _sync(config: Path, *extra: str, cwd: Path | None = None):
    return run_cli(
        "sync", "--config", str(config), "--since", "2026-02-01", "--until", "2026-02-04",
        *extra, cwd=cwd,
    )  # fmt: skip


def _poll_once(config: Path) -> None:
    from deploy_fetcher.engine import Runtime
    from deploy_fetcher.plugins import load_config

    runtime = Runtime(load_config(config, environ={}))
    try:
        runtime.poller.run_target(runtime.providers["replay"], "replay")
    finally:
        runtime.close()


# -- point 3: the state path -------------------------------------------------------------------
def test_sync_from_another_directory_uses_the_same_state_and_sends_nothing_twice(
    setup, dashboard, tmp_path
):
    """A relative state.path lives beside the config: a second sync elsewhere re-posts nothing."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    first = _sync(setup, cwd=tmp_path)
    second = _sync(setup, cwd=elsewhere)
    assert (0, 0) == (first.returncode, second.returncode), second.stderr
    assert 3 == len(dashboard.rows())
    assert (True, False) == (
        (setup.parent / "state.db").exists(),
        (elsewhere / "state.db").exists(),
    )
    assert str(setup.parent / "state.db") in first.stderr  # the absolute path is logged at start


@pytest.mark.parametrize(
    "command",
    [("state", "list"), ("state", "show", "replay"), ("outbox", "stats"), ("outbox", "list")],
)
def test_read_only_commands_refuse_to_create_a_state_file(setup, command):
    """Inspecting state that does not exist exits 1 naming the absolute path, creating nothing."""
    result = run_cli(*command, "--config", str(setup))
    assert 1 == result.returncode
    assert str(setup.parent / "state.db") in result.stderr
    assert not (setup.parent / "state.db").exists()


# -- point 5: scripting ------------------------------------------------------------------------
def test_config_and_output_are_accepted_before_or_after_the_subcommand(setup):
    """`fetcher --config F --output json state list` equals `fetcher state list --config F --output json`."""
    _poll_once(setup)
    before = run_cli("--config", str(setup), "--output", "json", "state", "list")
    after = run_cli("state", "list", "--config", str(setup), "--output", "json")
    assert (0, 0) == (before.returncode, after.returncode), before.stderr
    assert json.loads(before.stdout) == json.loads(after.stdout)


def test_state_list_shows_the_mark_and_the_last_outcome(setup):
    """`state list --output json` gives each cursor's mark, and the last poll's outcome."""
    _poll_once(setup)
    (row,) = json.loads(run_cli("state", "list", "--config", str(setup), "--output", "json").stdout)
    assert ("replay", "6", "ok") == (row["key"], row["mark"], row["last_outcome"])
    table = run_cli("state", "list", "--config", str(setup)).stdout
    assert ["key", "mark", "updated", "last_outcome", "since", "error"] == table.split("\n")[
        0
    ].split()


def test_state_show_accepts_a_source_name_as_its_help_says(setup):
    """`state show SOURCE` prints that source's cursors; an unknown key exits 1."""
    _poll_once(setup)
    shown = run_cli("state", "show", "replay", "--config", str(setup))
    missing = run_cli("state", "show", "nope", "--config", str(setup))
    assert (0, {"offset": 6}) == (shown.returncode, json.loads(shown.stdout))
    assert (1, "nope") == (missing.returncode, "nope" if "nope" in missing.stderr else "")


def test_state_reset_all_needs_a_confirmation_or_yes(setup):
    """Without a terminal, `state reset --all` refuses (exit 2) unless --yes; --yes resets."""
    _poll_once(setup)
    refused = run_cli("state", "reset", "--all", "--config", str(setup))
    kept = run_cli("state", "show", "replay", "--config", str(setup))
    done = run_cli("state", "reset", "--all", "--yes", "--config", str(setup))
    assert (2, 0) == (refused.returncode, kept.returncode)
    assert "--yes" in refused.stderr
    assert (0, "reset replay") == (done.returncode, done.stdout.strip())


@pytest.mark.parametrize(("answer", "code"), [("y\n", 0), ("n\n", 2)])
def test_state_reset_all_asks_on_a_terminal(setup, answer, code):
    """On a terminal `state reset --all` asks; `y` resets, anything else leaves the cursors."""
    import os
    import pty
    import sys

    _poll_once(setup)
    leader, follower = pty.openpty()
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "deploy_fetcher.cli", *RESET_ALL, str(setup)],
            stdin=follower,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        os.write(leader, answer.encode())
        proc.communicate(timeout=60)
    finally:
        os.close(leader)
        os.close(follower)
    remaining = run_cli("state", "list", "--config", str(setup), "--output", "json").stdout
    assert (code, 0 if code == 0 else 1) == (proc.returncode, len(json.loads(remaining)))


def test_unknown_row_ids_exit_1_and_are_named(setup, dashboard):
    """`outbox retry 999` and `outbox purge 999` exit 1 naming the id that is not a dead letter."""
    assert 0 == _sync(setup).returncode
    retry = run_cli("outbox", "retry", "999", "--config", str(setup))
    purge = run_cli("outbox", "purge", "999", "--config", str(setup))
    assert (1, 1) == (retry.returncode, purge.returncode)
    assert "999" in retry.stderr
    assert "999" in purge.stderr


def test_json_output_of_outbox_stats_and_sync(setup, dashboard):
    """`sync --output json` and `outbox stats --output json` are parseable documents."""
    synced = _sync(setup, "--output", "json")
    stats = run_cli("outbox", "stats", "--config", str(setup), "--output", "json")
    document = json.loads(synced.stdout)
    assert (True, 3) == (document["ok"], document["sinks"][0]["delivered"])
    assert [{"sink": "dashboard", "pending": 0, "delivered": 3, "dead": 0}] == [
        {k: row[k] for k in ("sink", "pending", "delivered", "dead")}
        for row in json.loads(stats.stdout)
    ]


def test_check_output_json(setup):
    """`check --offline --output json` says the configuration is ok, as JSON."""
    result = run_cli("check", "--offline", "--config", str(setup), "--output", "json")
    assert (0, "ok", 1) == (
        result.returncode,
        json.loads(result.stdout)["configuration"],
        json.loads(result.stdout)["sources"],
    )


@pytest.mark.parametrize("since", ["2026-02-02T00:00Z", "2026-02-02T00:00", "2026-02-02 00:00Z"])
def test_since_accepts_rfc3339_without_seconds(setup, dashboard, since):
    """--since takes a time without seconds (and without an offset, read as UTC)."""
    result = run_cli(
        "sync", "--config", str(setup), "--since", since, "--until", "2026-02-04T00:00Z"
    )
    assert 0 == result.returncode, result.stderr
    assert ["d1", "d2"] == [row["deployment_id"] for row in dashboard.rows()]


@pytest.mark.parametrize(
    ("argv", "attribute", "expected"),
    [
        (["run", "--grace", "20s"], "grace", 20.0),
        (["run", "--grace", "1m30s"], "grace", 90.0),
        (["run", "--grace", "7"], "grace", 7.0),
        (["healthcheck", "--timeout", "2s"], "timeout", 2.0),
        (["sync", "--since", "7d", "--max-wait", "10m"], "max_wait", 600.0),
        (["outbox", "flush", "--max-wait", "30s"], "max_wait", 30.0),
    ],
)
def test_every_time_option_takes_a_duration(argv, attribute, expected):
    """--grace, --timeout and --max-wait take 20s, 1m30s or a bare number of seconds."""
    assert expected == getattr(build_parser().parse_args(argv), attribute)


def test_a_bad_duration_is_a_usage_error():
    """`run --grace soon` exits 2 with the duration syntax in the message."""
    result = run_cli("run", "--grace", "soon")
    assert 2 == result.returncode
    assert "30s" in result.stderr


def test_every_option_and_command_has_help_text():
    """No flag, positional or subcommand of any command is left without a help text."""
    parser = build_parser()
    missing = []
    stack = [(parser, "fetcher")]
    while stack:
        current, name = stack.pop()
        for action in current._actions:
            choices = getattr(action, "choices", None)
            if isinstance(choices, dict):  # subcommands: their help is checked below
                stack += [(sub, f"{name} {key}") for key, sub in choices.items()]
                continue
            if action.help is None or not str(action.help).strip():
                missing.append(f"{name} {'/'.join(action.option_strings) or action.dest}")
    tree = command_tree(parser)
    nodes = [tree]
    while nodes:
        node = nodes.pop()
        missing += [" ".join(c.path) for c in node.children if not c.help]
        nodes += node.children
    assert [] == missing


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
@pytest.mark.parametrize(
    ("words", "expected"),
    [
        (["fetcher", ""], {"run", "sync", "explain", "state", "outbox", "--config"}),
        (["fetcher", "state", "re"], {"reset"}),
        (["fetcher", "--config", "f.yaml", "outbox", ""], {"list", "flush", "purge"}),
        (["fetcher", "outbox", "list", "--state", ""], {"pending", "delivered", "dead", "all"}),
        (["fetcher", "sync", "--dry"], {"--dry-run"}),
    ],
)
def test_bash_completion_completes_commands_flags_and_choices(tmp_path, words, expected):
    """The generated bash script, sourced in a real bash, completes subcommands, flags, choices."""
    script = tmp_path / "fetcher.bash"
    script.write_text(render("bash", build_parser()), encoding="utf-8")
    array = " ".join(f"'{w}'" for w in words)
    program = (
        f"source {script}; COMP_WORDS=({array}); COMP_CWORD={len(words) - 1}; _fetcher;"
        ' printf "%s\\n" "${COMPREPLY[@]}"'
    )
    out = subprocess.run(
        ["bash", "--norc", "-c", program], capture_output=True, text=True, timeout=30, check=True
    )
    assert expected <= set(out.stdout.split())


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_command_prints_a_script_per_shell(shell):
    """`fetcher completion SHELL` prints a script naming every top-level command."""
    result = run_cli("completion", shell)
    assert 0 == result.returncode
    for command in ("run", "sync", "check", "explain", "state", "outbox", "demo"):
        assert command in result.stdout


# -- fetcher outbox flush ----------------------------------------------------------------------
def test_outbox_flush_delivers_rows_waiting_out_a_backoff(setup, dashboard):
    """Rows held back by a Retry-After are delivered by `outbox flush` at once."""
    dashboard.inject(
        Fault(
            status=503,
            headers={"Retry-After": "3000"},
            match="^/api/deployments$",
            method="POST",
        )
    )
    waited = _sync(setup, "--max-wait", "2s")
    assert 1 == waited.returncode  # still queued: the sink asked for 50 minutes
    assert [] == dashboard.rows()
    flushed = run_cli("outbox", "flush", "--config", str(setup), "--output", "json")
    document = json.loads(flushed.stdout)
    assert (0, 1, 3) == (
        flushed.returncode,
        document["made_due"],
        document["sinks"][0]["delivered"],
    )
    assert ["d0", "d1", "d2"] == [row["deployment_id"] for row in dashboard.rows()]


def test_outbox_flush_names_an_unknown_sink(setup):
    """`outbox flush --sink nope` is a usage error naming the sinks there are."""
    result = run_cli("outbox", "flush", "--sink", "nope", "--config", str(setup))
    assert (2, True) == (result.returncode, "dashboard" in result.stderr)


# -- point 4: a backfill you can watch -----------------------------------------------------------
def test_sync_logs_progress_lines_when_not_on_a_terminal(setup, dashboard):
    """Without a terminal, sync writes sync.progress log lines ending with everything delivered."""
    result = _sync(setup)
    lines = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    progress = [line for line in lines if line.get("event") == "sync.progress"]
    assert progress
    last = progress[-1]
    assert (3, "1/1") == (last["events_read"], last["targets_read"])
    assert {"queued": 3, "already_delivered": 0, "delivered": 3, "dead": 0, "pending": 0} == {
        k: last["sinks"]["dashboard"][k]
        for k in ("queued", "already_delivered", "delivered", "dead", "pending")
    }


def test_a_second_sync_counts_what_was_already_delivered(setup, dashboard):
    """Re-running a window queues nothing new: the rows show as already delivered, none sent."""
    assert 0 == _sync(setup).returncode
    again = json.loads(_sync(setup, "--output", "json").stdout)
    (sink,) = again["sinks"]
    assert (0, 3, 0) == (sink["queued"], sink["already_delivered"], sink["delivered"])
    assert 3 == len(dashboard.rows())


def test_dry_run_applies_each_sinks_filters_and_renames(tmp_path, dashboard):
    """--dry-run prints each event once per sink that would get it, as that sink would get it."""
    script = _script(tmp_path / "e", days=2)
    config = write_config(
        tmp_path / "fetcher.yaml",
        {
            "rules": {"environment": {"rename": {"production": "prod"}}},
            "sources": [{"name": "replay", "provider": "scripted", "script": str(script)}],
            "sinks": [
                {"name": "all", "type": "jsonl", "path": str(tmp_path / "a.jsonl")},
                {
                    "name": "renamed",
                    "type": "jsonl",
                    "path": str(tmp_path / "b.jsonl"),
                    "include": {"services": ["api"]},
                    "exclude": {"statuses": ["failure"]},
                    "rename": {"services": {"api": "API"}},
                },
                {
                    "name": "none",
                    "type": "jsonl",
                    "path": str(tmp_path / "c.jsonl"),
                    "include": {"environments": ["staging"]},
                },
            ],
        },
    )
    result = run_cli(
        "sync",
        "--dry-run",
        "--config",
        str(config),
        "--since",
        "2026-01-31",
        "--until",
        "2026-02-03",
    )
    printed = [json.loads(line) for line in result.stdout.splitlines()]
    assert 0 == result.returncode, result.stderr
    assert [
        ("all", "d0", "api", "prod"),
        ("renamed", "d0", "API", "prod"),
        ("all", "d1", "api", "prod"),
        ("renamed", "d1", "API", "prod"),
    ] == [(p["sink"], p["deployment_id"], p["service"], p["environment"]) for p in printed]
    assert not (tmp_path / "fetcher-state.db").exists()


def test_a_reader_that_stops_early_ends_the_command_quietly(tmp_path):
    """`fetcher sync --dry-run | head -1`: exit 141 as for SIGPIPE, no BrokenPipeError traceback."""
    script = _script(tmp_path / "e", days=2000)
    config = write_config(
        tmp_path / "fetcher.yaml",
        {
            "sources": [{"name": "replay", "provider": "scripted", "script": str(script)}],
            "sinks": [{"name": "all", "type": "jsonl", "path": str(tmp_path / "a.jsonl")}],
        },
    )
    command = [sys.executable, "-m", "deploy_fetcher.cli", "sync", "--dry-run"]
    command += ["--config", str(config), "--since", "2026-01-01", "--until", "2032-01-01"]
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL
    ) as process:
        assert process.stdout is not None
        assert process.stderr is not None
        first = process.stdout.readline()
        process.stdout.close()  # what head does after its first line
        errors = process.stderr.read().decode()
        code = process.wait(timeout=60)
    assert b'"sink": "all"' in first
    assert (141, "") == (code, errors)


@pytest.fixture
def readyz():
    """A server on 127.0.0.1 answering GET /readyz with 200 "ready" (404 elsewhere)."""
    import http.server
    import threading

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            found = self.path == "/readyz"
            body = b"ready" if found else b"no"
            self.send_response(200 if found else 404)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_healthcheck_probes_the_port_its_configuration_names(tmp_path, readyz):
    """--config gives server.port (its sources need no secret); --port overrides it."""
    config = write_config(
        tmp_path / "fetcher.yaml",
        {
            "server": {"port": readyz},
            "sources": [{"name": "gh", "provider": "github", "token": "${UNSET_GH_TOKEN}"}],
        },
    )
    probed = run_cli("healthcheck", "--config", str(config), "--timeout", "5s")
    elsewhere = run_cli("healthcheck", "--config", str(config), "--port", "1", "--timeout", "2s")
    assert (0, "ready") == (probed.returncode, probed.stdout.strip()), probed.stderr
    assert (1, True) == (
        elsewhere.returncode,
        elsewhere.stderr.startswith("http://127.0.0.1:1/readyz: "),
    ), elsewhere.stderr


def test_healthcheck_refuses_a_configuration_without_a_server(tmp_path):
    """server.enabled: false means there is nothing to probe: exit 2 saying so."""
    config = write_config(tmp_path / "fetcher.yaml", {"server": {"enabled": False}})
    result = run_cli("healthcheck", "--config", str(config))
    assert (2, True) == (result.returncode, "server.enabled is false" in result.stderr)


def test_a_value_a_model_refuses_is_one_line_without_pydantics_link(monkeypatch, capsys):
    """A pydantic error reaching the CLI is 'field: message' per error: no link, no input echoed."""
    from deploy_fetcher import cli
    from deploy_fetcher.cli import _config
    from deploy_fetcher.model import DeployEvent

    def refuse(_args: object) -> int:
        DeployEvent(
            deployment_id="",
            service="api",
            environment="prod",
            status="sideways",
            happened_at="2026-01-01T00:00:00Z",
        )
        return 0

    monkeypatch.setattr(_config, "_schema", refuse)
    code = cli.main(["config", "schema"])
    printed = capsys.readouterr().err
    assert (1, 1) == (code, len(printed.splitlines()))
    assert printed.startswith(
        "fetcher: deployment_id: String should have at least 1 character; status: Input should be"
    )
    assert ("errors.pydantic.dev" not in printed, "sideways" not in printed) == (True, True)
