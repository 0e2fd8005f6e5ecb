"""The Kubernetes manifests: well-formed, consistent with each other, the image and the daemon."""

import base64
import json
import shutil
import subprocess
import urllib.error
import urllib.request
from pathlib import Path, PurePosixPath
from typing import Any

import jsonschema
import pytest
import yaml
from prometheus_client import CollectorRegistry
from tests.deploy._dockerfile import parse_file
from tests.deploy._kustomize import KustomizeError, render
from tests.deploy._manifests import find, load_documents, parse_quantity
from tests.deploy._paths import DEPLOY, DOCKERFILE, KUBERNETES, ROOT
from tests.deploy._pod import PodFiles

from deploy_fetcher import __version__

NAMESPACE = "deploy-fetcher"
HEALTH_ENDPOINTS = {"/healthz", "/readyz"}


BASE = KUBERNETES / "base"
OVERLAY = KUBERNETES / "overlays" / "secret-files"
SERVICE_MONITOR = KUBERNETES / "components" / "servicemonitor"
#: The credentials the overlay's secretGenerator reads, as an admin would write them.
SECRET_FILES = {
    "github-token": "test-github-token\n",
    "gitlab-token": "test-gitlab-token\n",
    "azure-devops-pat": "test-azure-devops-pat\n",
    "dashboard-api-key": "test-dashboard-api-key\n",
}


@pytest.fixture(scope="module")
def kubernetes_copy(tmp_path_factory) -> Path:
    """deploy/kubernetes copied aside, with the credential files the overlay reads written in."""
    copy = tmp_path_factory.mktemp("k8s") / "kubernetes"
    shutil.copytree(KUBERNETES, copy)
    for name, value in SECRET_FILES.items():
        (copy / "overlays" / "secret-files" / "secrets" / name).write_text(value, encoding="utf-8")
    return copy


@pytest.fixture(scope="module")
def objects(kubernetes_copy) -> list[dict[str, Any]]:
    """What ``kubectl apply -k deploy/kubernetes/overlays/secret-files`` creates."""
    return render(kubernetes_copy / "overlays" / "secret-files")


@pytest.fixture(scope="module")
def deployment(objects) -> dict[str, Any]:
    return find(objects, "Deployment")


@pytest.fixture(scope="module")
def container(deployment) -> dict[str, Any]:
    (only,) = deployment["spec"]["template"]["spec"]["containers"]
    return only


def _env(container) -> dict[str, str]:
    return {item["name"]: item["value"] for item in container.get("env", [])}


def _mount(deployment, container, path: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The volumeMount at ``path`` and the volume it mounts."""
    (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == path]
    volumes = deployment["spec"]["template"]["spec"]["volumes"]
    (volume,) = [v for v in volumes if v["name"] == mount["name"]]
    return mount, volume


def _port(container, name_or_number: str | int) -> int:
    if isinstance(name_or_number, int):
        return name_or_number
    (port,) = [p for p in container["ports"] if p["name"] == name_or_number]
    return int(port["containerPort"])


def _config_path(container) -> str:
    args = container["args"]
    return args[args.index("--config") + 1]


@pytest.fixture
def pod(tmp_path, objects, deployment, container) -> PodFiles:
    """The container's mounts with the ConfigMap and Secret contents written into them."""
    files = PodFiles(tmp_path)
    for mount in container["volumeMounts"]:
        _, volume = _mount(deployment, container, mount["mountPath"])
        content: dict[str, str] = {}
        if "configMap" in volume:
            content = find(objects, "ConfigMap", volume["configMap"]["name"])["data"]
        elif "secret" in volume:
            data = find(objects, "Secret", volume["secret"]["secretName"])["data"]
            content = {key: base64.b64decode(value).decode() for key, value in data.items()}
        files.mount(mount["mountPath"], content)
    return files


def test_every_yaml_file_under_deploy_is_well_formed():
    """Every .yaml/.yml file in deploy/ parses, and each document is a mapping."""
    paths = sorted([*DEPLOY.rglob("*.yaml"), *DEPLOY.rglob("*.yml")])
    assert paths
    for path in paths:
        documents = load_documents(path)
        assert documents, path
        assert all(isinstance(doc, dict) for doc in documents), path


def test_kustomization_lists_every_manifest_of_the_folder():
    """No manifest of the base or the component is forgotten by ``apply -k``, none listed twice."""
    for folder in (BASE, SERVICE_MONITOR):
        kustomization = yaml.safe_load((folder / "kustomization.yaml").read_text(encoding="utf-8"))
        files = {p.name for p in folder.glob("*.yaml")} - {"kustomization.yaml"}
        assert sorted(files) == sorted(kustomization["resources"]), folder
    base = yaml.safe_load((BASE / "kustomization.yaml").read_text(encoding="utf-8"))
    assert NAMESPACE == base["namespace"]


def test_every_object_has_api_version_kind_name_and_the_app_label(objects):
    """Each object is addressable; each object of the base carries app.kubernetes.io/name."""
    assert [
        "ConfigMap",
        "Deployment",
        "Namespace",
        "PersistentVolumeClaim",
        "Secret",
        "Service",
    ] == (sorted(o["kind"] for o in objects))
    for obj in objects:
        assert obj.get("apiVersion"), obj
        assert obj.get("kind"), obj
        assert obj["metadata"].get("name"), obj
        if obj["kind"] != "Secret":
            assert "deploy-fetcher" == obj["metadata"]["labels"]["app.kubernetes.io/name"]


def test_no_committed_manifest_is_a_secret():
    """No Secret is committed: applying the manifests can never overwrite a real one."""
    kinds = {
        doc.get("kind")
        for path in KUBERNETES.rglob("*.yaml")
        for doc in load_documents(path)
        if isinstance(doc, dict)
    }
    assert "Secret" not in kinds


def test_the_base_leaves_the_secret_to_the_admin(kubernetes_copy):
    """The base renders without any credential file and mounts the Secret by its plain name."""
    rendered = render(kubernetes_copy / "base")
    deployment = find(rendered, "Deployment")
    (volume,) = [v for v in deployment["spec"]["template"]["spec"]["volumes"] if "secret" in v]
    assert [] == [o for o in rendered if o["kind"] == "Secret"]
    assert "deploy-fetcher-secrets" == volume["secret"]["secretName"]


def test_the_overlays_secret_comes_from_the_files_and_rolls_the_pod(objects, deployment):
    """The generated Secret holds the files' contents under a content-hash name the pod mounts."""
    secret = find(objects, "Secret")
    (volume,) = [v for v in deployment["spec"]["template"]["spec"]["volumes"] if "secret" in v]
    decoded = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    assert SECRET_FILES == decoded
    assert secret["metadata"]["name"] == volume["secret"]["secretName"]
    assert secret["metadata"]["name"].startswith("deploy-fetcher-secrets-")
    assert NAMESPACE == secret["metadata"]["namespace"]


def test_a_missing_credential_file_stops_the_build(tmp_path):
    """Without its files the overlay does not render (no placeholder gets applied instead)."""
    copy = tmp_path / "kubernetes"
    shutil.copytree(KUBERNETES, copy)
    with pytest.raises(KustomizeError, match="github-token"):
        render(copy / "overlays" / "secret-files")


def test_git_ignores_the_credential_files():
    """Files written into the overlay's secrets/ folder are never committed."""
    folder = OVERLAY / "secrets"
    rules = (folder / ".gitignore").read_text(encoding="utf-8").split()
    assert ["*", "!.gitignore", "!README.md"] == [r for r in rules if not r.startswith("#")][-3:]
    if shutil.which("git"):
        probe = subprocess.run(
            ["git", "check-ignore", "-q", str(folder / "github-token")],
            cwd=ROOT,
            capture_output=True,
            timeout=30,
            check=False,
        )
        assert 0 == probe.returncode


def _kubernetes_schemas() -> dict[str, Any]:
    return json.loads((Path(__file__).parent / "k8s" / "schemas.json").read_text(encoding="utf-8"))


def _schema_errors(schema: dict[str, Any], obj: dict[str, Any]) -> list[str]:
    """The innermost errors (inside anyOf), as kubectl's validation would name them."""

    def leaves(errors):
        out = []
        for error in errors:
            if error.context:
                out += leaves(error.context)
            elif not (error.validator == "type" and error.validator_value == "null"):
                out.append(f"{'.'.join(map(str, error.absolute_path))}: {error.message}")
        return out

    return leaves(jsonschema.Draft202012Validator(schema).iter_errors(obj))


@pytest.mark.parametrize("folder", ["base", "overlays/secret-files"])
def test_every_rendered_object_validates_against_the_kubernetes_schema(kubernetes_copy, folder):
    """Each object the base and the overlay render passes the pinned Kubernetes schema of its kind."""
    schemas = _kubernetes_schemas()
    rendered = render(kubernetes_copy / folder)
    problems = {}
    for obj in rendered:
        schema = {"$defs": schemas["$defs"], **schemas["kinds"][obj["kind"]]}
        errors = _schema_errors(schema, obj)
        if errors:
            problems[f"{obj['kind']}/{obj['metadata']['name']}"] = errors
    assert {} == problems


def test_the_kubernetes_schema_catches_a_misspelt_field(deployment):
    """The pinned schema refuses an unknown field (it is not a schema that accepts anything)."""
    schemas = _kubernetes_schemas()
    broken = json.loads(json.dumps(deployment))
    broken["spec"]["template"]["spec"]["containers"][0]["imagePullPolcy"] = "Always"
    errors = _schema_errors({"$defs": schemas["$defs"], **schemas["kinds"]["Deployment"]}, broken)
    assert any("imagePullPolcy" in error for error in errors), errors


def test_one_replica_replaced_by_recreate(deployment):
    """SQLite allows one writer: exactly one pod, and the old one stops before the new starts."""
    assert 1 == deployment["spec"]["replicas"]
    assert {"type": "Recreate"} == deployment["spec"]["strategy"]


def test_the_pod_runs_locked_down(deployment, container):
    """Non-root, no privilege escalation, read-only root, no capabilities, default seccomp."""
    pod_security = deployment["spec"]["template"]["spec"]["securityContext"]
    assert True is pod_security["runAsNonRoot"]
    assert {"type": "RuntimeDefault"} == pod_security["seccompProfile"]
    user = parse_file(DOCKERFILE).final.last("USER")
    assert user is not None
    assert user.args == f"{pod_security['runAsUser']}:{pod_security['runAsGroup']}"
    security = container["securityContext"]
    assert True is security["runAsNonRoot"]
    assert False is security["allowPrivilegeEscalation"]
    assert True is security["readOnlyRootFilesystem"]
    assert {"drop": ["ALL"]} == security["capabilities"]
    assert {"type": "RuntimeDefault"} == security["seccompProfile"]
    assert False is deployment["spec"]["template"]["spec"]["automountServiceAccountToken"]


def test_the_read_only_root_keeps_a_writable_tmp(deployment, container):
    """The temp directory is an emptyDir, so SQLite has somewhere to write temporary files."""
    _, volume = _mount(deployment, container, "/tmp")  # noqa: S108
    assert "emptyDir" in volume
    assert "/tmp" == _env(container)["TMPDIR"]  # noqa: S108


def test_requests_and_limits_are_set_and_consistent(container):
    """CPU and memory have requests and limits, each request within its limit."""
    resources = container["resources"]
    for kind in ("cpu", "memory"):
        request = parse_quantity(resources["requests"][kind])
        limit = parse_quantity(resources["limits"][kind])
        assert 0 < request <= limit, kind


def test_probes_use_the_health_endpoints_on_the_server_port(container):
    """Startup and liveness ask /healthz, readiness /readyz, all on the container's http port."""
    probes = {
        name: container[name]["httpGet"]
        for name in ("startupProbe", "livenessProbe", "readinessProbe")
    }
    assert {
        "startupProbe": "/healthz",
        "livenessProbe": "/healthz",
        "readinessProbe": "/readyz",
    } == {name: probe["path"] for name, probe in probes.items()}
    ports = {_port(container, probe["port"]) for probe in probes.values()}
    assert {int(_env(container)["FETCHER_SERVER__PORT"])} == ports


def test_probe_paths_are_served_by_the_health_server(container):
    """The real health server answers every probe path (and 404s an unknown one)."""
    from deploy_fetcher.server import HealthServer

    paths = {container[n]["httpGet"]["path"] for n in ("livenessProbe", "readinessProbe")}
    assert HEALTH_ENDPOINTS == paths
    server = HealthServer("127.0.0.1", 0, registry=CollectorRegistry(), problems=list)
    port = server.start()
    try:
        statuses = {path: _status(f"http://127.0.0.1:{port}{path}") for path in sorted(paths)}
        unknown = _status(f"http://127.0.0.1:{port}/ready")
    finally:
        server.stop()
    assert dict.fromkeys(paths, 200) == statuses
    assert 404 == unknown


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - 127.0.0.1 only
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def test_the_container_runs_the_images_command(container):
    """``args`` repeat the image's CMD, so the manifest reads on its own and cannot diverge."""
    assert parse_file(DOCKERFILE).final.last("CMD").exec_form == container["args"]
    assert _config_path(container) == _env(container)["FETCHER_CONFIG"]


def test_the_config_is_mounted_where_config_points(objects, deployment, container):
    """The ConfigMap volume holds the file ``--config`` names."""
    path = PurePosixPath(_config_path(container))
    mount, volume = _mount(deployment, container, str(path.parent))
    assert True is mount["readOnly"]
    config_map = find(objects, "ConfigMap", volume["configMap"]["name"])
    assert path.name in config_map["data"]


def test_the_config_map_loads_through_the_real_loader(pod, container):
    """The embedded config.yaml is valid for the real loader, with the pod's env overrides."""
    from deploy_fetcher.plugins import load_config

    config_file = pod.host_path(_config_path(container))
    config_file.write_text(pod.rewrite(config_file.read_text(encoding="utf-8")), encoding="utf-8")
    config = load_config(config_file, environ=pod.environ(_env(container)))
    assert _port(container, "http") == config.server.port
    assert "0.0.0.0" == config.server.host  # noqa: S104
    assert pod.host_path("/var/lib/fetcher/state.db") == config.state.path
    assert ["github", "gitlab", "azure-devops"] == [s.provider for s in config.sources]
    assert ["deployment-dashboard"] == [s.type for s in config.sinks]


def test_state_is_on_the_claim_at_the_images_volume(objects, deployment, container):
    """The PVC is mounted at the image's VOLUME, where FETCHER_STATE__PATH points."""
    (volume_path,) = [v.args for v in parse_file(DOCKERFILE).final.all("VOLUME")]
    mount, volume = _mount(deployment, container, volume_path)
    claim = find(objects, "PersistentVolumeClaim", volume["persistentVolumeClaim"]["claimName"])
    assert ["ReadWriteOnce"] == claim["spec"]["accessModes"]
    assert volume_path == str(PurePosixPath(_env(container)["FETCHER_STATE__PATH"]).parent)
    assert not mount.get("readOnly", False)


def test_every_secret_file_the_config_reads_comes_from_the_secret(objects, deployment, container):
    """Each ``*_file`` path in the config is a key of the mounted Secret, and no key is unused."""
    config_map = find(objects, "ConfigMap")
    config = yaml.safe_load(config_map["data"][PurePosixPath(_config_path(container)).name])
    secret = find(objects, "Secret")
    (mount,) = [m for m in container["volumeMounts"] if m["mountPath"].startswith("/run/secrets")]
    _, volume = _mount(deployment, container, mount["mountPath"])
    assert secret["metadata"]["name"] == volume["secret"]["secretName"]
    assert 0o440 == volume["secret"]["defaultMode"]
    referenced = {
        value
        for section in (*config["sources"], *config["sinks"])
        for key, value in section.items()
        if key.endswith("_file")
    }
    assert {f"{mount['mountPath']}/{key}" for key in secret["data"]} == referenced


def test_the_service_selects_the_pod_and_publishes_unready_addresses(
    objects, deployment, container
):
    """The metrics Service targets the pod's http port, even while /readyz fails."""
    service = find(objects, "Service")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert deployment["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    (port,) = service["spec"]["ports"]
    assert _port(container, "http") == _port(container, port["targetPort"])
    assert True is service["spec"]["publishNotReadyAddresses"]


def test_prometheus_scrapes_metrics_through_monitor_or_annotations(objects, deployment, container):
    """The ServiceMonitor component and the scrape annotations both point at /metrics on http."""
    monitor = find(render(SERVICE_MONITOR), "ServiceMonitor")
    service = find(objects, "Service")
    assert "monitoring.coreos.com/v1" == monitor["apiVersion"]
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
    assert "/metrics" == endpoint["path"]
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": str(_port(container, "http")),
        "prometheus.io/path": "/metrics",
    } == annotations


def test_termination_grace_outlasts_the_daemons_drain(deployment):
    """Kubernetes waits longer than ``fetcher run --grace`` before it kills the pod."""
    from deploy_fetcher.cli import build_parser

    grace = build_parser().parse_args(["run"]).grace
    assert grace < deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]


def test_the_image_is_pinned_to_the_package_version(container):
    """The manifests deploy the release they were written for, never ``latest``."""
    kustomization = yaml.safe_load((BASE / "kustomization.yaml").read_text(encoding="utf-8"))
    name, _, tag = container["image"].rpartition(":")
    assert __version__ == tag
    assert [{"name": name, "newTag": __version__}] == kustomization["images"]


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl not installed")
def test_kustomize_renders_every_object_into_the_namespace():
    """``kubectl kustomize`` builds the folder; every namespaced object lands in deploy-fetcher."""
    rendered = subprocess.run(
        ["kubectl", "kustomize", str(BASE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    objects = [doc for doc in yaml.safe_load_all(rendered.stdout) if doc]
    assert 5 == len(objects)
    namespaced = [o for o in objects if o["kind"] != "Namespace"]
    assert {NAMESPACE} == {o["metadata"]["namespace"] for o in namespaced}
