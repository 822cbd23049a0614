"""deploy/compose.yaml: two servers built from the image's Dockerfile, sharing one Redis."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import pytest

from nbstream import ServerOptions
from tests.deploy.conftest import (
    DEPLOY,
    ROOT,
    SECRET_FILES,
    load_yaml,
    pinned,
    project_version,
    serve_args,
)
from tests.deploy.dockerfile import Stage
from tests.deploy.pod import compose_literal, memory_bytes, option

Service = dict[str, Any]
SECRETS_DIR = "/run/secrets/"
"""Where Compose mounts a service's secrets."""


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
        assert "--bind" not in redis["command"]
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


@pytest.fixture(scope="module")
def secrets() -> dict[str, str]:
    """Compose secret name -> file (relative to deploy/)."""
    (compose,) = load_yaml(DEPLOY / "compose.yaml")
    return {name: spec["file"] for name, spec in compose["secrets"].items()}


def redis_command(services: dict[str, Service]) -> list[str]:
    """The Redis service's command as its container sees it (``$$`` undone)."""
    return [compose_literal(arg) for arg in services["redis"]["command"]]


def test_secret_files_are_git_ignored_and_made_as_documented(secrets: dict[str, str]) -> None:
    assert sorted(path.removeprefix("./secrets/") for path in secrets.values()) == \
        sorted(SECRET_FILES)
    assert "deploy/secrets/" in (ROOT / ".gitignore").read_text().split()
    comment = (DEPLOY / "compose.yaml").read_text()
    assert all(f"> deploy/{path.removeprefix('./')}" in comment for path in secrets.values())


def test_servers_log_json_and_read_credentials_from_their_secrets(
    servers: dict[str, Service], secrets: dict[str, str], image: Stage,
) -> None:
    for name, server in servers.items():
        args = serve_args(image.entrypoint + server["command"], server["environment"])
        assert args.log_format == "json", name
        assert urlsplit(args.backplane).password is None, name  # not on the command line
        files = [args.auth_users_file, server["environment"]["NBSTREAM_REDIS_PASSWORD_FILE"]]
        for path in files:
            assert path.startswith(SECRETS_DIR), path
            assert path.removeprefix(SECRETS_DIR) in server["secrets"], (name, path)
        assert set(server["secrets"]) <= set(secrets)


def test_redis_requires_the_password_file_the_servers_read(
    services: dict[str, Service], servers: dict[str, Service],
) -> None:
    redis = services["redis"]
    command = redis_command(services)
    assert command[:2] == ["sh", "-c"] and command[2].startswith("exec redis-server ")
    assert command[2].endswith('"$@"') and command[3] == "redis-server"
    (secret,) = redis["secrets"]
    assert f'--requirepass "$(cat {SECRETS_DIR}{secret})"' in command[2]
    for server in servers.values():
        password_file = server["environment"]["NBSTREAM_REDIS_PASSWORD_FILE"]
        assert password_file == SECRETS_DIR + secret
    check = compose_literal(" ".join(redis["healthcheck"]["test"][1:]))
    assert f'REDISCLI_AUTH="$(cat {SECRETS_DIR}{secret})"' in check and "PONG" in check
    assert "ports" not in redis  # reachable on the Compose network only


def test_redis_memory_stays_under_its_limit_and_evicts_only_expiring_keys(
    services: dict[str, Service],
) -> None:
    args = redis_command(services)[4:]
    maxmemory = memory_bytes(option(args, "--maxmemory"))
    assert 0 < maxmemory <= 0.75 * memory_bytes(services["redis"]["mem_limit"])
    assert option(args, "--maxmemory-policy") == "volatile-lru"


def test_images_are_pinned(services: dict[str, Service]) -> None:
    images = {service["image"] for service in services.values()}
    assert all(pinned(image) for image in images), images
    assert f"nbstream:{project_version()}" in images
