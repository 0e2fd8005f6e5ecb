"""The docker compose file: a local trial on the emulators by default, the real thing as a profile."""

import importlib
import importlib.util
import re
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from tests.deploy._dockerfile import parse_file
from tests.deploy._paths import COMPOSE_DIR, COMPOSE_FILE, DOCKERFILE
from tests.deploy._pod import PodFiles

IMAGE = "deploy-fetcher:local"
EMULATORS = {"dashboard", "github", "gitlab", "azure-devops"}
RESTART_POLICIES = {"always", "unless-stopped", "on-failure"}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def services(compose) -> dict[str, dict[str, Any]]:
    return compose["services"]


def _arg(service: dict[str, Any], flag: str) -> str:
    command = service["command"]
    return command[command.index(flag) + 1]


def _mounts(service: dict[str, Any]) -> dict[str, str]:
    """Container path → source, for the short ``source:target[:ro]`` volume syntax."""
    out = {}
    for volume in service.get("volumes", []):
        source, target, *_ = volume.split(":")
        out[target] = source
    return out


def _environment(service: dict[str, Any]) -> dict[str, str | None]:
    env = service.get("environment", {})
    if isinstance(env, list):
        return {k: (v if sep else None) for k, sep, v in (item.partition("=") for item in env)}
    return dict(env)


def _config_text(service: dict[str, Any]) -> str:
    config_path = parse_file(DOCKERFILE).final.last("CMD").exec_form[-1]
    source = _mounts(service)[config_path]
    return (COMPOSE_FILE.parent / source).read_text(encoding="utf-8")


def _container_port(mapping: str) -> int:
    return int(mapping.rsplit(":", 1)[1])


def test_every_service_runs_the_image_built_from_the_repository(services):
    """One image for all services, built from the repository's Dockerfile; the database is pinned."""
    assert re.fullmatch(r"postgres:15\.\d+-bookworm", services["postgres"]["image"])
    for name, service in services.items():
        if name == "postgres":
            continue
        assert IMAGE == service["image"], name
        context = (COMPOSE_FILE.parent / service["build"]["context"]).resolve()
        assert DOCKERFILE == context / service["build"]["dockerfile"], name


def test_every_service_restarts_and_reports_its_health(services):
    """Each service has a restart policy and a healthcheck (the clock says it has none)."""
    for name, service in services.items():
        assert service["restart"] in RESTART_POLICIES, name
        healthcheck = service["healthcheck"]
        if healthcheck.get("disable"):
            assert "clock" == name
            continue
        assert "CMD" == healthcheck["test"][0], name


def test_the_local_trial_runs_by_default_and_the_real_fetcher_only_in_its_profile(services):
    """No profile on the trial's services; ``fetcher-real`` and the replicas only in theirs."""
    profiles = {name: service.get("profiles") for name, service in services.items()}
    assert {
        "fetcher-real": ["real"],
        "postgres": ["replicas"],
        "fetcher-replica": ["replicas"],
    } == {k: v for k, v in profiles.items() if v}
    assert EMULATORS | {"clock", "fetcher"} == {k for k, v in profiles.items() if not v}


def test_emulators_run_the_bundled_modules_on_the_port_their_healthcheck_probes(services):
    """Each emulator runs ``python -m deploy_fetcher.emulators.<x>``, listens on 0.0.0.0, probes itself."""
    for name in sorted(EMULATORS):
        service = services[name]
        python, dash_m, module = service["entrypoint"]
        assert ("python", "-m") == (python, dash_m)
        assert module == f"deploy_fetcher.emulators.{name.replace('-', '_')}"
        assert importlib.util.find_spec(module) is not None, module
        assert "0.0.0.0" == _arg(service, "--host")  # noqa: S104
        port = _arg(service, "--port")
        assert f"http://127.0.0.1:{port}/" in service["healthcheck"]["test"][-1], name


def test_fetchers_use_the_images_command_config_path_and_state_volume(compose, services):
    """Both fetchers keep the image's ENTRYPOINT/CMD and mount config and state where it expects."""
    final = parse_file(DOCKERFILE).final
    config_path = final.last("CMD").exec_form[-1]
    (state_dir,) = [v.args for v in final.all("VOLUME")]
    for name in ("fetcher", "fetcher-real"):
        service = services[name]
        assert "entrypoint" not in service
        assert "command" not in service
        mounts = _mounts(service)
        assert (COMPOSE_FILE.parent / mounts[config_path]).is_file(), name
        assert mounts[state_dir] in compose["volumes"], name
        assert ["CMD", "fetcher", "healthcheck", "--live"] == service["healthcheck"]["test"]


def test_the_fetchers_published_port_is_the_configured_server_port(services):
    """The container port published is the config's server.port (and the image's EXPOSE)."""
    exposed = int(parse_file(DOCKERFILE).final.last("EXPOSE").args)
    for name in ("fetcher", "fetcher-real"):
        service = services[name]
        config = yaml.safe_load(_config_text(service))
        (mapping,) = service["ports"]
        assert mapping.startswith("127.0.0.1:"), "trial ports stay on the loopback interface"
        assert exposed == _container_port(mapping) == config["server"]["port"], name


def test_the_grace_period_of_docker_outlasts_the_daemons_drain(services):
    """``docker compose stop`` waits longer than ``fetcher run --grace`` before SIGKILL."""
    from deploy_fetcher.cli import build_parser

    grace = build_parser().parse_args(["run"]).grace
    for name in ("fetcher", "fetcher-real"):
        seconds = re.fullmatch(r"(\d+)s", services[name]["stop_grace_period"])
        assert seconds is not None
        assert grace < int(seconds.group(1)), name


def test_the_trial_config_points_every_source_and_sink_at_an_emulator(services):
    """Each source is its emulator's ``demo_source()`` for the compose address; the sink is the dashboard."""
    config = yaml.safe_load(_config_text(services["fetcher"]))
    fetcher_env = _environment(services["fetcher"])
    (sink,) = config["sinks"]
    dashboard = services["dashboard"]
    assert f"http://dashboard:{_arg(dashboard, '--port')}" == sink["url"]
    assert "${DASHBOARD_API_KEY}" == sink["api_key"]
    assert _arg(dashboard, "--api-key") == fetcher_env["DASHBOARD_API_KEY"]
    seen = set()
    for source in config["sources"]:
        urls = [v for v in source.values() if isinstance(v, str) and v.startswith("http://")]
        hosts = {urlsplit(url).hostname for url in urls}
        (service_name,) = hosts
        emulator = services[service_name]
        module = importlib.import_module(emulator["entrypoint"][-1])
        address = f"http://{service_name}:{_arg(emulator, '--port')}"
        assert module.demo_source(address, name=source["name"]) == source
        assert _arg(emulator, "--token") in source.values(), source["name"]
        seen.add(service_name)
    assert EMULATORS - {"dashboard"} == seen
    depends = services["fetcher"]["depends_on"]
    assert {name: {"condition": "service_healthy"} for name in EMULATORS} == depends


def test_every_ci_emulator_clock_moves_once(services):
    """Each CI emulator's clock is driven by the clock service or by its own ``--speed``, not both."""
    clock = services["clock"]
    script = clock["entrypoint"][-1]
    assert (COMPOSE_FILE.parent / _mounts(clock)[script]).is_file()
    by_clock = {urlsplit(arg).hostname for arg in clock["command"] if arg.startswith("http://")}
    for name in by_clock:
        assert f"http://{name}:{_arg(services[name], '--port')}" in clock["command"]
    by_itself = {
        name
        for name in EMULATORS - {"dashboard"}
        if "--speed" in services[name]["command"] and float(_arg(services[name], "--speed")) > 0
    }
    assert set() == by_clock & by_itself
    assert EMULATORS - {"dashboard"} == by_clock | by_itself
    assert by_clock == set(clock["depends_on"])


def test_the_trial_config_loads_through_the_real_loader(tmp_path, services):
    """config.local.yaml is valid for the real loader with the fetcher service's environment."""
    from deploy_fetcher.plugins import load_config

    path = tmp_path / "config.yaml"
    path.write_text(_config_text(services["fetcher"]), encoding="utf-8")
    env = {k: v for k, v in _environment(services["fetcher"]).items() if v is not None}
    config = load_config(path, environ=env)
    assert {"github", "gitlab", "azure-devops"} == {s.provider for s in config.sources}
    assert env["DASHBOARD_API_KEY"] == config.sinks[0].api_key.get_secret_value()


def test_the_real_config_reads_every_declared_secret_and_loads(tmp_path, compose, services):
    """config.real.yaml reads its credentials from the service's compose secrets and loads."""
    from deploy_fetcher.plugins import load_config

    service = services["fetcher-real"]
    assert set(service["secrets"]) <= set(compose["secrets"])
    for name in service["secrets"]:
        declared = PurePosixPath(compose["secrets"][name]["file"])
        assert declared.parent == PurePosixPath("./compose/secrets")
    pod = PodFiles(tmp_path)
    pod.mount("/run/secrets", {name: f"dummy-{name}" for name in service["secrets"]})
    text = _config_text(service)
    referenced = set(re.findall(r"_file:\s*(\S+)", text))
    assert {f"/run/secrets/{name}" for name in service["secrets"]} == referenced
    path = tmp_path / "config.yaml"
    path.write_text(pod.rewrite(text), encoding="utf-8")
    passed = {k for k, v in _environment(service).items() if v is None}
    environ = {"DASHBOARD_URL": "https://deployments.example.com", "GITHUB_OWNER": "your-org"}
    assert set(environ) == passed
    config = load_config(path, environ=environ)
    assert ["deployment-dashboard"] == [s.type for s in config.sinks]
    assert "dummy-dashboard_api_key" == config.sinks[0].api_key.get_secret_value()


def test_the_secrets_folder_keeps_real_credentials_out_of_git():
    """deploy/compose/secrets ignores everything but its README and .gitignore."""
    ignore = (COMPOSE_DIR / "secrets" / ".gitignore").read_text(encoding="utf-8").split()
    assert ["*", "!.gitignore", "!README.md"] == ignore


def test_the_replicas_share_the_trials_sources_through_the_postgres_service(tmp_path, services):
    """Profile ``replicas``: N fetchers, each loading the trial's sources with a postgres state."""
    from deploy_fetcher.plugins import load_config

    replica = services["fetcher-replica"]
    local = yaml.safe_load(_config_text(services["fetcher"]))
    shared = yaml.safe_load(_config_text(replica))
    path = tmp_path / "config.yaml"
    path.write_text(_config_text(replica), encoding="utf-8")
    env = {k: v for k, v in _environment(replica).items() if v is not None}

    config = load_config(path, environ=env)

    assert (local["sources"], local["sinks"]) == (shared["sources"], shared["sinks"])
    assert "postgres" == config.state.backend
    url = urlsplit(config.state.url.get_secret_value())
    postgres = _environment(services["postgres"])
    assert ("postgres", 5432, "/" + str(postgres["POSTGRES_DB"])) == (
        url.hostname,
        url.port,
        url.path,
    )
    assert (postgres["POSTGRES_USER"], postgres["POSTGRES_PASSWORD"]) == (
        url.username,
        url.password,
    )
    assert "service_healthy" == replica["depends_on"]["postgres"]["condition"]
    low, high = re.fullmatch(r"127\.0\.0\.1:(\d+)-(\d+):8080", replica["ports"][0]).groups()
    assert replica["deploy"]["replicas"] == int(high) - int(low) + 1
    assert state_dir_not_mounted(replica)


def state_dir_not_mounted(service: dict[str, Any]) -> bool:
    """The replicas keep nothing on a volume: their state is the database's."""
    (state_dir,) = [v.args for v in parse_file(DOCKERFILE).final.all("VOLUME")]
    return state_dir not in _mounts(service)
