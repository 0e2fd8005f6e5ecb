"""The container image: what the Dockerfile promises an operator, checked without a Docker engine."""

import json
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
import zipfile

import pytest
from tests.deploy._dockerfile import Dockerfile, Instruction, expand, parse_file
from tests.deploy._dockerignore import context_files
from tests.deploy._dockerignore import parse as parse_ignore
from tests.deploy._paths import DOCKERFILE, DOCKERIGNORE, PYPROJECT, ROOT

from deploy_fetcher import __version__
from deploy_fetcher.config import ServerConfig

STATE_DIR = "/var/lib/fetcher"
CONFIG_PATH = "/etc/fetcher/config.yaml"
#: ``python:<major>.<minor>.<patch>-slim[-<debian>]``, optionally pinned by digest as well.
PINNED_SLIM_PYTHON = re.compile(
    r"^(?:docker\.io/(?:library/)?)?python:(?P<version>\d+\.\d+\.\d+)-slim(?:-[a-z]+)?"
    r"(?:@sha256:[0-9a-f]{64})?$"
)


@pytest.fixture(scope="module")
def dockerfile() -> Dockerfile:
    return parse_file(DOCKERFILE)


def _run_words(instruction: Instruction) -> list[str]:
    return shlex.split(instruction.args.replace("&&", " "))


def _pyproject() -> dict:
    return tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))


def test_the_image_is_built_in_two_stages(dockerfile):
    """Wheels are built in a first stage; the final stage only installs them."""
    assert 2 <= len(dockerfile.stages)
    build = dockerfile.stages[0]
    assert any("pip wheel" in run.args for run in build.all("RUN"))
    final = dockerfile.final
    assert [] == [run.line for run in final.all("RUN") if "pip wheel" in run.args]
    sources = [
        i.flags.get("mount", "") + i.flags.get("from", "")
        for i in final.all("RUN") + final.all("COPY")
    ]
    assert any(f"from={build.name}" in s or s == build.name for s in sources)


def test_every_stage_uses_the_same_pinned_slim_python(dockerfile):
    """The base is a slim Python pinned to a patch release (never latest), one for all stages."""
    bases = {stage.base for stage in dockerfile.stages}
    assert 1 == len(bases)
    (base,) = bases
    match = PINNED_SLIM_PYTHON.match(base)
    assert match is not None, base
    required = _pyproject()["project"]["requires-python"].removeprefix(">=")
    image_version = tuple(int(p) for p in match.group("version").split(".")[:2])
    assert tuple(int(p) for p in required.split(".")) <= image_version


def test_the_process_runs_as_a_fixed_non_root_user(dockerfile):
    """USER is a numeric uid:gid other than root, and the user is created with exactly that uid."""
    user = dockerfile.final.last("USER")
    assert user is not None
    uid, _, gid = user.args.partition(":")
    assert uid.isdigit(), user.args
    assert gid.isdigit(), user.args
    assert 0 != int(uid)
    assert 0 != int(gid)
    words = [w for run in dockerfile.final.all("RUN") for w in _run_words(run)]
    assert uid == words[words.index("--uid") + 1]
    assert gid == words[words.index("--gid") + 1]
    runs_after_user = [r.line for r in dockerfile.final.all("RUN") if r.line > user.line]
    assert [] == runs_after_user


def test_state_lives_on_the_declared_volume(dockerfile):
    """The state file is on VOLUME /var/lib/fetcher, which the runtime user owns."""
    volumes = [v.exec_form or v.args.split() for v in dockerfile.final.all("VOLUME")]
    assert [[STATE_DIR]] == volumes
    env = dockerfile.final.env()
    assert env["FETCHER_STATE__PATH"].startswith(STATE_DIR + "/")
    created = " ".join(run.args for run in dockerfile.final.all("RUN"))
    assert re.search(rf"install -d -o fetcher -g fetcher -m 07[0-7]0 {STATE_DIR}", created)


def test_exposed_port_is_the_servers_default_and_listens_on_all_interfaces(dockerfile):
    """EXPOSE names the health/metrics port of the config model; the server binds 0.0.0.0."""
    exposed = [int(p.split("/")[0]) for e in dockerfile.final.all("EXPOSE") for p in e.args.split()]
    assert [ServerConfig().port] == exposed
    assert "0.0.0.0" == dockerfile.final.env()["FETCHER_SERVER__HOST"]  # noqa: S104
    assert "FETCHER_SERVER__PORT" not in dockerfile.final.env()


def test_healthcheck_asks_the_fetcher_itself(dockerfile):
    """HEALTHCHECK runs ``fetcher healthcheck --live`` (no curl) with bounded timing.

    Liveness, not readiness: one rejected token (a 503 from /readyz) must not mark the container
    unhealthy, which would get it restarted for nothing.
    """
    healthcheck = dockerfile.final.last("HEALTHCHECK")
    assert healthcheck is not None
    kind, _, command = healthcheck.args.partition(" ")
    assert "CMD" == kind
    assert ["fetcher", "healthcheck", "--live"] == json.loads(command)
    seconds = {k: _seconds(v) for k, v in healthcheck.flags.items() if k != "retries"}
    assert {"interval", "timeout", "start-period"} <= set(seconds)
    assert seconds["timeout"] < seconds["interval"]
    assert 1 <= int(healthcheck.flags["retries"])


def test_stop_signal_is_sigterm(dockerfile):
    """The daemon's clean shutdown is wired to SIGTERM."""
    assert "SIGTERM" == dockerfile.final.last("STOPSIGNAL").args


def test_oci_labels_describe_the_image(dockerfile):
    """The standard OCI labels are set; version and licence agree with the package."""
    final = dockerfile.final
    args = final.args(dockerfile.global_args)
    labels = {k: expand(v, args) for k, v in final.labels().items()}
    for key in ("title", "description", "version", "source", "licenses", "base.name"):
        assert labels.get(f"org.opencontainers.image.{key}"), key
    assert __version__ == labels["org.opencontainers.image.version"]
    assert _pyproject()["project"]["license"]["text"] == labels["org.opencontainers.image.licenses"]
    assert dockerfile.final.base == labels["org.opencontainers.image.base.name"]


def test_entrypoint_is_the_console_script_and_cmd_runs_the_daemon(dockerfile):
    """ENTRYPOINT is the package's ``fetcher`` script; CMD runs it on the config FETCHER_CONFIG names."""
    entrypoint = dockerfile.final.last("ENTRYPOINT")
    cmd = dockerfile.final.last("CMD")
    assert ["fetcher"] == entrypoint.exec_form
    assert "fetcher" in _pyproject()["project"]["scripts"]
    assert ["run", "--config", CONFIG_PATH] == cmd.exec_form
    assert CONFIG_PATH == dockerfile.final.env()["FETCHER_CONFIG"]


def test_no_download_tools_are_installed(dockerfile):
    """Neither curl nor wget is installed in any stage (the healthcheck does not need them)."""
    words = {w for stage in dockerfile.stages for run in stage.all("RUN") for w in _run_words(run)}
    assert set() == words & {"curl", "wget"}
    assert [] == [r.line for r in dockerfile.final.all("RUN") if "apt-get install" in r.args]


def test_python_output_is_unbuffered_and_pip_keeps_no_cache(dockerfile):
    """Logs reach ``docker logs`` at once; no pip cache is left in a layer."""
    assert "1" == dockerfile.final.env()["PYTHONUNBUFFERED"]
    for stage in dockerfile.stages:
        cache_off = stage.env().get("PIP_NO_CACHE_DIR") == "1"
        for run in stage.all("RUN"):
            if re.search(r"pip (install|wheel)", run.args):
                assert cache_off or "--no-cache-dir" in run.args, run.line


def test_copied_sources_exist_and_are_in_the_build_context(dockerfile):
    """Every file COPY takes from the context exists and is not dropped by .dockerignore."""
    rules = parse_ignore(DOCKERIGNORE.read_text(encoding="utf-8"))
    context = set(context_files(ROOT, rules))
    for stage in dockerfile.stages:
        for copy in stage.all("COPY"):
            if "from" in copy.flags:
                continue
            *sources, _destination = copy.exec_form or copy.args.split()
            for source in sources:
                path = ROOT / source
                assert path.exists(), source
                inside = (
                    [source]
                    if path.is_file()
                    else [p.relative_to(ROOT).as_posix() for p in path.rglob("*.py")]
                )
                assert inside, source
                assert set(inside) <= context, source


def test_dockerignore_keeps_local_clutter_out():
    """The venv, git metadata, caches, tests and state files never reach the build context."""
    rules = parse_ignore(DOCKERIGNORE.read_text(encoding="utf-8"))
    context = context_files(ROOT, rules)
    clutter = re.compile(
        r"(^|/)(\.venv|\.git|__pycache__|\.mypy_cache|\.ruff_cache|\.pytest_cache|tests)(/|$)"
        r"|\.py[co]$|\.db(-wal|-shm)?$"
    )
    assert [] == [path for path in context if clutter.search(path)]
    assert {"pyproject.toml", "README.md", "src/deploy_fetcher/py.typed"} <= set(context)


def _seconds(value: str) -> float:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    match = re.fullmatch(r"(\d+)(ms|s|m|h)", value)
    assert match is not None, value
    return int(match.group(1)) * units[match.group(2)]


def test_the_build_context_alone_builds_a_complete_wheel(tmp_path):
    """The files .dockerignore lets through are enough for the build stage's ``pip wheel``."""
    pytest.importorskip("hatchling", reason="needs the build backend installed in this environment")
    rules = parse_ignore(DOCKERIGNORE.read_text(encoding="utf-8"))
    context = tmp_path / "context"
    for relative in context_files(ROOT, rules):
        target = context / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ROOT / relative, target)
    wheels = tmp_path / "wheels"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--quiet",
            "--wheel-dir",
            str(wheels),
            str(context),
        ],
        check=True,
        timeout=60,
    )
    (wheel,) = wheels.glob("deploy_fetcher-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        entry_points = archive.read(f"deploy_fetcher-{__version__}.dist-info/entry_points.txt")
    modules = {
        p.relative_to(ROOT / "src").as_posix()
        for p in (ROOT / "src" / "deploy_fetcher").rglob("*.py")
    }
    assert set() == modules - names
    assert "deploy_fetcher/py.typed" in names
    assert "fetcher = deploy_fetcher.cli:main" in entry_points.decode()
