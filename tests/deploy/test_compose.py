"""deploy/compose.yaml: two servers built from the image's Dockerfile, sharing one Redis."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import pytest

from nbstream import ServerOptions
from tests.deploy.conftest import DEPLOY, ROOT, load_yaml, serve_args
from tests.deploy.dockerfile import Stage

Service = dict[str, Any]


@pytest.fixture(scope="module")
def services() -> dict[str, Service]:
    """The services of deploy/compose.yaml, YAML anchors and merge keys applied."""
    (compose,) = load_yaml(DEPLOY / "compose.yaml")
    found: dict[str, Service] = compose["services"]
    return found


@pytest.fixture(scope="module")
def servers(services: dict[str, Service]) -> dict[str, Service]:
    """The services built from deploy/Dockerfile."""
    return {name: service for name, service in services.items() if "build" in service}


def test_two_servers_are_built_from_the_repository_root(servers: dict[str, Service]) -> None:
    assert len(servers) == 2
    for name, server in servers.items():
        context = (DEPLOY / server["build"]["context"]).resolve()
        assert context == ROOT, name  # where .dockerignore is read
        assert context / server["build"]["dockerfile"] == DEPLOY / "Dockerfile", name


def test_servers_share_the_compose_redis(
    services: dict[str, Service], servers: dict[str, Service], image: Stage
) -> None:
    urls = set()
    for name, server in servers.items():
        assert "entrypoint" not in server, name  # command must only replace CMD
        backplane = serve_args(image.entrypoint + server["command"]).backplane
        urls.add(backplane)
        url = urlsplit(backplane)
        assert url.scheme == "redis" and url.hostname in services, (name, url)
        redis = services[url.hostname]
        assert redis["image"].startswith("redis:") and "--port" not in redis["command"]
        assert url.port == 6379  # redis-server's default port
        assert "healthcheck" in redis
        assert server["depends_on"][url.hostname]["condition"] == "service_healthy", name
    assert len(urls) == 1, urls


def test_servers_publish_the_image_port_and_keep_its_healthcheck(
    servers: dict[str, Service], image: Stage
) -> None:
    port = serve_args(image.argv).port
    host_ports = set()
    for name, server in servers.items():
        assert "healthcheck" not in server, name  # the image's HEALTHCHECK applies
        (mapping,) = server["ports"]
        host, container = mapping.split(":")
        assert int(container) == port, name
        host_ports.add(host)
    assert len(host_ports) == len(servers)


def test_containers_run_as_non_root_and_get_time_to_stop(
    services: dict[str, Service], servers: dict[str, Service], image: Stage
) -> None:
    for name, server in servers.items():
        assert "user" not in server, name  # the image's numeric non-root USER applies
        grace = serve_args(image.entrypoint + server["command"]).grace
        stop = server["stop_grace_period"]
        assert stop.endswith("s") and float(stop[:-1]) > grace + ServerOptions().close_timeout
    others = [s for name, s in services.items() if name not in servers]
    assert others and all(int(s["user"].split(":")[0]) != 0 for s in others)
