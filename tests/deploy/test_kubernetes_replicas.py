"""The several-replica Kubernetes set: rolling, disruption-budgeted, stateless pods on PostgreSQL."""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any

import pytest
import yaml
from tests.deploy._kustomize import render
from tests.deploy._manifests import find, load_documents
from tests.deploy._paths import KUBERNETES
from tests.deploy._pod import PodFiles

BASE = KUBERNETES / "base"
REPLICAS = KUBERNETES / "replicas"
#: Taken unchanged from the single-replica base (a test keeps them equal).
SHARED = ("namespace.yaml", "service.yaml")


def _kustomization(folder=REPLICAS) -> dict[str, Any]:
    return yaml.safe_load((folder / "kustomization.yaml").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def objects() -> list[dict[str, Any]]:
    """What ``kubectl apply -k deploy/kubernetes/replicas`` creates."""
    return render(REPLICAS)


@pytest.fixture(scope="module")
def deployment(objects) -> dict[str, Any]:
    return find(objects, "Deployment")


@pytest.fixture(scope="module")
def container(deployment) -> dict[str, Any]:
    (only,) = deployment["spec"]["template"]["spec"]["containers"]
    return only


def _env(container) -> dict[str, Any]:
    return {item["name"]: item.get("value", item.get("valueFrom")) for item in container["env"]}


def test_the_kustomization_lists_every_manifest_of_the_folder():
    """Nothing in the folder is left out of ``kubectl apply -k``, nothing listed twice."""
    files = {p.name for p in REPLICAS.glob("*.yaml")} - {"kustomization.yaml"}
    assert sorted(files) == sorted(_kustomization()["resources"])
    assert _kustomization(BASE)["namespace"] == _kustomization()["namespace"]
    assert _kustomization(BASE)["images"] == _kustomization()["images"]


def test_shared_manifests_are_the_single_replica_sets_own():
    """Namespace and Service cannot drift between the two sets."""
    for name in SHARED:
        assert (BASE / name).read_text() == (REPLICAS / name).read_text(), name


def test_several_replicas_roll_one_at_a_time_without_downtime(deployment):
    """At least two replicas; a rolling update starts a new pod before it stops an old one."""
    spec = deployment["spec"]
    assert spec["replicas"] >= 2
    assert "RollingUpdate" == spec["strategy"]["type"]
    assert {"maxSurge": 1, "maxUnavailable": 0} == spec["strategy"]["rollingUpdate"]


def test_a_disruption_budget_keeps_all_but_one_replica_up(objects, deployment):
    """Voluntary disruptions (drains, upgrades) take at most one replica of the pod's labels."""
    budget = find(objects, "PodDisruptionBudget")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert 1 == budget["spec"]["maxUnavailable"]
    assert budget["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()


def test_replicas_spread_over_nodes(deployment):
    """One node failure should not take every replica."""
    (spread,) = deployment["spec"]["template"]["spec"]["topologySpreadConstraints"]
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert "kubernetes.io/hostname" == spread["topologyKey"]
    assert spread["labelSelector"]["matchLabels"].items() <= pod_labels.items()


def test_pods_hold_no_state_of_their_own(objects, deployment, container):
    """No PersistentVolumeClaim: the state is in the database, any pod can go anywhere."""
    volumes = deployment["spec"]["template"]["spec"]["volumes"]
    assert [] == [o for o in objects if o["kind"] == "PersistentVolumeClaim"]
    assert [] == [v for v in volumes if "persistentVolumeClaim" in v]
    assert "FETCHER_STATE__PATH" not in _env(container)


def test_the_database_url_comes_from_a_secret_the_set_does_not_create(
    objects, deployment, container
):
    """FETCHER_STATE__URL is read from a Secret key; no Secret (no placeholder) is in the set."""
    env = _env(container)
    single = find(load_documents(BASE / "deployment.yaml"), "Deployment")
    assert {"name": "deploy-fetcher-state", "key": "url"} == env["FETCHER_STATE__URL"][
        "secretKeyRef"
    ]
    assert "postgres" == env["FETCHER_STATE__BACKEND"]
    assert [] == [o for o in objects if o["kind"] == "Secret"]
    assert [v for v in single["spec"]["template"]["spec"]["volumes"] if "secret" in v] == [
        v for v in deployment["spec"]["template"]["spec"]["volumes"] if "secret" in v
    ]


def test_the_config_loads_as_a_postgres_state_through_the_real_loader(
    tmp_path, objects, deployment, container
):
    """The ConfigMap, with the pod's environment and the Secret's URL, gives backend postgres."""
    from deploy_fetcher.plugins import load_config

    files = PodFiles(tmp_path)
    for mount in container["volumeMounts"]:
        volumes = deployment["spec"]["template"]["spec"]["volumes"]
        (volume,) = [v for v in volumes if v["name"] == mount["name"]]
        content: dict[str, str] = {}
        if "configMap" in volume:
            content = find(objects, "ConfigMap", volume["configMap"]["name"])["data"]
        elif "secret" in volume:
            content = dict.fromkeys(_secret_files(objects, container), "a-credential")
        files.mount(mount["mountPath"], content)
    args = container["args"]
    config_file = files.host_path(args[args.index("--config") + 1])
    config_file.write_text(files.rewrite(config_file.read_text(encoding="utf-8")))
    url = "postgresql://fetcher:s3cret@postgres.internal:5432/fetcher"
    environ = {k: v for k, v in _env(container).items() if isinstance(v, str)}
    environ["FETCHER_STATE__URL"] = url

    config = load_config(config_file, environ=environ)

    assert ("postgres", url) == (config.state.backend, config.state.url.get_secret_value())
    assert "0.0.0.0" == config.server.host  # noqa: S104
    assert 0 < config.state.lease_ttl.total_seconds() < 60


def _secret_files(objects, container) -> list[str]:
    """The file names the config's ``*_file`` keys read from the credentials Secret's mount."""
    config = yaml.safe_load(find(objects, "ConfigMap")["data"]["config.yaml"])
    return [
        PurePosixPath(value).name
        for section in (*config["sources"], *config["sinks"])
        for key, value in section.items()
        if key.endswith("_file")
    ]


def test_the_pod_is_the_single_replica_sets_apart_from_what_sharing_needs(container):
    """Same image, command, probes, limits and lock-down as the single-replica pod."""
    single = find(load_documents(BASE / "deployment.yaml"), "Deployment")
    (base,) = single["spec"]["template"]["spec"]["containers"]
    for key in ("image", "args", "ports", "livenessProbe", "readinessProbe", "resources"):
        assert base[key] == container[key], key
    assert base["securityContext"] == container["securityContext"]
    assert PurePosixPath("/tmp") in {  # noqa: S108 - the pod's writable /tmp mount
        PurePosixPath(m["mountPath"]) for m in container["volumeMounts"]
    }
