"""deploy/kubernetes/: the manifests agree with the image, the server and each other."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import pytest

from nbstream import ServerOptions
from tests.deploy.conftest import (
    DEPLOY,
    HEALTH_PATH,
    METRICS_PATH,
    READY_PATH,
    load_yaml,
    serve_args,
)
from tests.deploy.dockerfile import Stage

K8S = DEPLOY / "kubernetes"
Manifest = dict[str, Any]


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


def test_kustomization_lists_every_manifest() -> None:
    (kustomization,) = load_yaml(K8S / "kustomization.yaml")
    manifests = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert sorted(kustomization["resources"]) == sorted(manifests)


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
    for probe, path in (("readinessProbe", READY_PATH), ("livenessProbe", HEALTH_PATH)):
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


def test_pods_run_as_non_root(objects: dict[tuple[str, str], Manifest], image: Stage) -> None:
    for deployment in of_kind(objects, "Deployment"):
        context = deployment["spec"]["template"]["spec"]["securityContext"]
        assert context["runAsNonRoot"] is True and context["runAsUser"] != 0
        assert only_container(deployment)["securityContext"]["allowPrivilegeEscalation"] is False
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
