"""deploy/kubernetes/: the manifests agree with the image, the server and each other."""

from __future__ import annotations

import argparse
import re
import stat
from typing import Any
from urllib.parse import urlsplit

import pytest

from nbstream import ServerOptions
from tests.deploy.conftest import (
    DEPLOY,
    HEALTH_PATH,
    METRICS_PATH,
    READY_PATH,
    SECRET_FILES,
    load_yaml,
    pinned,
    project_version,
    serve_args,
)
from tests.deploy.dockerfile import Stage
from tests.deploy.pod import memory_bytes, option

K8S = DEPLOY / "kubernetes"
Manifest = dict[str, Any]
SERVER_LABELS = {"app.kubernetes.io/name": "nbstream", "app.kubernetes.io/component": "server"}
REDIS_LABELS = {"app.kubernetes.io/name": "nbstream", "app.kubernetes.io/component": "redis"}


@pytest.fixture(scope="module")
def objects() -> dict[tuple[str, str], Manifest]:
    """Every object the manifests declare, by (kind, name)."""
    found: dict[tuple[str, str], Manifest] = {}
    for path in sorted(K8S.glob("*.yaml")):
        if path.name != "kustomization.yaml":
            for doc in load_yaml(path):
                key = (doc["kind"], doc["metadata"]["name"])
                assert key not in found, f"{key} declared twice"
                found[key] = doc
    return found


def of_kind(objects: dict[tuple[str, str], Manifest], kind: str) -> list[Manifest]:
    """The objects of one kind."""
    return [doc for (k, _), doc in objects.items() if k == kind]


def only_container(deployment: Manifest) -> Manifest:
    """The single container of a Deployment's pods."""
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    result: Manifest = container
    return result


def port_number(container: Manifest, port: int | str) -> int:
    """A probe's or Service's target port, resolved against the container's named ports."""
    for declared in container["ports"]:
        if port in (declared["containerPort"], declared.get("name")):
            number: int = declared["containerPort"]
            return number
    raise AssertionError(f"port {port!r} is not declared by container {container['name']}")


def selected(objects: dict[tuple[str, str], Manifest], service: Manifest) -> Manifest:
    """The one Deployment whose pods the Service selects."""
    selector = service["spec"]["selector"].items()
    matches = [d for d in of_kind(objects, "Deployment")
               if selector <= d["spec"]["template"]["metadata"]["labels"].items()]
    assert len(matches) == 1, f"service {service['metadata']['name']} selects {len(matches)}"
    return matches[0]


def pod_spec(objects: dict[tuple[str, str], Manifest], name: str) -> Manifest:
    """The pod template's spec of a Deployment."""
    spec: Manifest = objects["Deployment", name]["spec"]["template"]["spec"]
    return spec


def server_args(objects: dict[tuple[str, str], Manifest], image: Stage) -> argparse.Namespace:
    """The server container's argv and (non-secret) environment, as nbstream reads them."""
    container = only_container(objects["Deployment", "nbstream"])
    environ = {e["name"]: str(e["value"]) for e in container.get("env", []) if "value" in e}
    return serve_args(image.entrypoint + container["args"], environ)


def generated_secrets() -> dict[str, dict[str, str]]:
    """Secret name -> key -> file (relative to deploy/kubernetes) from secretGenerator."""
    (kustomization,) = load_yaml(K8S / "kustomization.yaml")
    found: dict[str, dict[str, str]] = {}
    for generator in kustomization["secretGenerator"]:
        found[generator["name"]] = dict(entry.split("=", 1) for entry in generator["files"])
    return found


def test_kustomization_lists_every_manifest() -> None:
    (kustomization,) = load_yaml(K8S / "kustomization.yaml")
    manifests = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert sorted(kustomization["resources"]) == sorted(manifests)


def test_secrets_are_generated_from_git_ignored_files() -> None:
    files = [path for keys in generated_secrets().values() for path in keys.values()]
    assert sorted(path.removeprefix("secrets/") for path in files) == sorted(SECRET_FILES)
    ignored = (DEPLOY.parent / ".gitignore").read_text().split()
    assert "deploy/kubernetes/secrets/" in ignored
    comment = (K8S / "kustomization.yaml").read_text()
    assert all(f"> deploy/kubernetes/{path}" in comment for path in files)


def secret_file(objects: dict[tuple[str, str], Manifest], deployment: str,
                path: str) -> tuple[str, str]:
    """The (Secret, key) a container of ``deployment`` finds at file ``path``."""
    pod = pod_spec(objects, deployment)
    directory, _, key = path.rpartition("/")
    (mount,) = [m for m in only_container(objects["Deployment", deployment])["volumeMounts"]
                if m["mountPath"] == directory]
    assert mount["readOnly"] is True, mount
    (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    return volume["secret"]["secretName"], key


def test_every_secret_reference_names_a_generated_key(
    objects: dict[tuple[str, str], Manifest],
) -> None:
    generated = generated_secrets()
    volumes = [v for d in of_kind(objects, "Deployment")
               for v in d["spec"]["template"]["spec"].get("volumes", []) if "secret" in v]
    assert len(volumes) == 3  # the server's users and Redis password, Redis' password
    for volume in volumes:
        assert volume["secret"]["secretName"] in generated, volume
    for deployment in of_kind(objects, "Deployment"):  # credentials only in files
        assert all("valueFrom" not in e for e in only_container(deployment).get("env", []))


def test_deployments_select_their_own_pods(objects: dict[tuple[str, str], Manifest]) -> None:
    for deployment in of_kind(objects, "Deployment"):
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()


def test_services_reach_a_declared_port_of_one_deployment(
    objects: dict[tuple[str, str], Manifest],
) -> None:
    for service in of_kind(objects, "Service"):
        container = only_container(selected(objects, service))
        for port in service["spec"]["ports"]:
            port_number(container, port.get("targetPort", port["port"]))


def test_server_runs_the_image_command_and_probes_its_health_path(
    objects: dict[tuple[str, str], Manifest], image: Stage
) -> None:
    deployment = objects["Deployment", "nbstream"]
    assert deployment["spec"]["replicas"] == 2
    container = only_container(deployment)
    assert "command" not in container  # it would replace the ENTRYPOINT (host, port, grace)
    port = serve_args(image.entrypoint + container["args"]).port
    assert [p["containerPort"] for p in container["ports"]] == [port]
    paths = {"startupProbe": HEALTH_PATH, "livenessProbe": HEALTH_PATH,
             "readinessProbe": READY_PATH}
    for probe, path in paths.items():
        get = container[probe]["httpGet"]
        assert (get["path"], port_number(container, get["port"])) == (path, port), probe
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/path"] == METRICS_PATH
    assert annotations["prometheus.io/port"] == str(port)

    service = objects["Service", "nbstream"]
    assert selected(objects, service) is deployment
    assert [port_number(container, p["targetPort"]) for p in service["spec"]["ports"]] == [port]


def test_backplane_url_names_the_redis_service_and_port(
    objects: dict[tuple[str, str], Manifest], image: Stage
) -> None:
    container = only_container(objects["Deployment", "nbstream"])
    url = urlsplit(serve_args(image.entrypoint + container["args"]).backplane)
    assert url.scheme == "redis" and url.hostname is not None, url
    service = objects["Service", url.hostname]
    (port,) = [p for p in service["spec"]["ports"] if p["port"] == url.port]
    redis = only_container(selected(objects, service))
    assert redis["image"].startswith("redis:")
    assert port_number(redis, port["targetPort"]) == 6379  # redis-server's default port
    assert "--port" not in redis.get("args", [])


def test_startup_probe_outlasts_the_wait_for_redis(
    objects: dict[tuple[str, str], Manifest], image: Stage,
) -> None:
    container = only_container(objects["Deployment", "nbstream"])
    startup = container["startupProbe"]
    budget = startup["periodSeconds"] * startup["failureThreshold"]
    assert budget > server_args(objects, image).backplane_wait + 10
    assert "initialDelaySeconds" not in container["livenessProbe"]  # it starts after startup


def test_server_logs_json_and_reads_its_credentials_from_secrets(
    objects: dict[tuple[str, str], Manifest], image: Stage,
) -> None:
    args = server_args(objects, image)
    assert args.log_format == "json"
    assert urlsplit(args.backplane).password is None  # not on the command line
    generated = generated_secrets()
    secret, key = secret_file(objects, "nbstream", args.auth_users_file)
    assert secret == "nbstream-auth" and key in generated[secret]
    secret, key = secret_file(objects, "nbstream", args.redis_password_file)
    assert secret == "nbstream-redis" and key in generated[secret]


def test_secret_files_are_readable_by_the_pod_user_only(
    objects: dict[tuple[str, str], Manifest],
) -> None:
    for deployment in of_kind(objects, "Deployment"):
        pod = deployment["spec"]["template"]["spec"]
        context = pod["securityContext"]
        for volume in pod["volumes"]:
            if "secret" in volume:
                mode = volume["secret"]["defaultMode"]
                assert mode & stat.S_IRWXO == 0, oct(mode)  # not world-readable
                assert mode & stat.S_IRGRP and context["fsGroup"] == context["runAsGroup"]


def test_redis_requires_the_password_the_servers_use(
    objects: dict[tuple[str, str], Manifest], image: Stage,
) -> None:
    redis = only_container(objects["Deployment", "nbstream-redis"])
    shell, flag, script, name = redis["command"]
    assert (shell, flag, name) == ("sh", "-c", "redis-server")
    assert script.startswith("exec redis-server ") and script.endswith('"$@"')
    password = re.search(r'--requirepass "\$\(cat (\S+)\)"', script)
    assert password, script
    server = server_args(objects, image)
    assert secret_file(objects, "nbstream-redis", password.group(1)) == \
        secret_file(objects, "nbstream", server.redis_password_file)
    probe = " ".join(redis["readinessProbe"]["exec"]["command"])
    assert f'REDISCLI_AUTH="$(cat {password.group(1)})"' in probe
    assert "redis-cli ping" in probe and "PONG" in probe  # NOAUTH also exits 0


def test_redis_memory_stays_under_its_limit_and_evicts_only_expiring_keys(
    objects: dict[tuple[str, str], Manifest],
) -> None:
    redis = only_container(objects["Deployment", "nbstream-redis"])
    maxmemory = memory_bytes(option(redis["args"], "--maxmemory"))
    limit = memory_bytes(redis["resources"]["limits"]["memory"])
    assert 0 < maxmemory <= 0.75 * limit, (maxmemory, limit)
    assert option(redis["args"], "--maxmemory-policy") == "volatile-lru"


def test_only_the_servers_reach_redis(objects: dict[tuple[str, str], Manifest]) -> None:
    policy = objects["NetworkPolicy", "nbstream-redis"]["spec"]
    assert policy["podSelector"]["matchLabels"] == REDIS_LABELS
    assert sorted(policy["policyTypes"]) == ["Egress", "Ingress"] and policy["egress"] == []
    (rule,) = policy["ingress"]
    assert rule["from"] == [{"podSelector": {"matchLabels": SERVER_LABELS}}]
    redis = only_container(objects["Deployment", "nbstream-redis"])
    assert [port_number(redis, p["port"]) for p in rule["ports"]] == [6379]


def test_servers_take_their_port_and_reach_only_redis_and_dns(
    objects: dict[tuple[str, str], Manifest],
) -> None:
    policy = objects["NetworkPolicy", "nbstream"]["spec"]
    assert policy["podSelector"]["matchLabels"] == SERVER_LABELS
    assert sorted(policy["policyTypes"]) == ["Egress", "Ingress"]
    server = only_container(objects["Deployment", "nbstream"])
    (ingress,) = policy["ingress"]
    assert [port_number(server, p["port"]) for p in ingress["ports"]] == [8000]
    to_redis, dns = policy["egress"]
    assert to_redis["to"] == [{"podSelector": {"matchLabels": REDIS_LABELS}}]
    assert [p["port"] for p in to_redis["ports"]] == [6379]
    assert {(p["protocol"], p["port"]) for p in dns["ports"]} == {("UDP", 53), ("TCP", 53)}
    for deployment in of_kind(objects, "Deployment"):  # every pod is covered by a policy
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert any(p["spec"]["podSelector"]["matchLabels"].items() <= labels.items()
                   for p in of_kind(objects, "NetworkPolicy"))


def test_a_disruption_leaves_a_replica_and_replicas_spread(
    objects: dict[tuple[str, str], Manifest],
) -> None:
    deployment = objects["Deployment", "nbstream"]
    budget = objects["PodDisruptionBudget", "nbstream"]["spec"]
    assert budget["selector"]["matchLabels"] == SERVER_LABELS
    assert 1 <= budget["minAvailable"] < deployment["spec"]["replicas"]
    spread = {c["topologyKey"]: c for c in pod_spec(objects, "nbstream")[
        "topologySpreadConstraints"]}
    assert spread["kubernetes.io/hostname"]["maxSkew"] == 1
    for constraint in spread.values():
        assert constraint["labelSelector"]["matchLabels"] == SERVER_LABELS


def test_pods_run_as_non_root(objects: dict[tuple[str, str], Manifest], image: Stage) -> None:
    for deployment in of_kind(objects, "Deployment"):
        pod = deployment["spec"]["template"]["spec"]
        context = pod["securityContext"]
        assert context["runAsNonRoot"] is True and context["runAsUser"] != 0
        assert only_container(deployment)["securityContext"]["allowPrivilegeEscalation"] is False
        assert pod["automountServiceAccountToken"] is False  # neither calls the API
    server = objects["Deployment", "nbstream"]["spec"]["template"]["spec"]
    assert str(server["securityContext"]["runAsUser"]) == image.user.split(":")[0]


def test_pods_are_given_longer_to_stop_than_the_server_needs(
    objects: dict[tuple[str, str], Manifest], image: Stage
) -> None:
    pod = objects["Deployment", "nbstream"]["spec"]["template"]["spec"]
    container = only_container(objects["Deployment", "nbstream"])
    sleep, pause = container["lifecycle"]["preStop"]["exec"]["command"]
    assert sleep == "sleep"
    grace = serve_args(image.entrypoint + container["args"]).grace
    needed = float(pause) + grace + ServerOptions().close_timeout
    assert pod["terminationGracePeriodSeconds"] > needed


def test_images_are_pinned(objects: dict[tuple[str, str], Manifest]) -> None:
    images = {only_container(d)["image"] for d in of_kind(objects, "Deployment")}
    assert all(pinned(image) for image in images), images
    assert f"nbstream:{project_version()}" in images
