"""The deploy files, run: Redis and ``nbstream serve`` started with the argv, variables
and secret files a pod or a Compose service gets, on 127.0.0.1 instead of a cluster.

What is swapped for running here, and nothing else: the listening host (127.0.0.1,
not 0.0.0.0) and ports (free ones), the Redis host (a Service or Compose name) and
container paths (under a temporary directory).
"""

from __future__ import annotations

import json
import os
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

import nbstream
from tests.cli_process import NbstreamProcess
from tests.conftest import TIMEOUT
from tests.deploy.conftest import DEPLOY, HEALTH_PATH, READY_PATH, Redis, load_yaml, tokens
from tests.deploy.dockerfile import Stage
from tests.deploy.pod import (
    compose_literal,
    expand,
    free_port,
    kubernetes_env,
    localize,
    mount_secrets,
    option,
)

K8S = DEPLOY / "kubernetes"


def kubernetes_objects() -> dict[tuple[str, str], dict[str, Any]]:
    """Every object of the manifests, by (kind, name)."""
    return {(doc["kind"], doc["metadata"]["name"]): doc
            for path in sorted(K8S.glob("*.yaml")) if path.name != "kustomization.yaml"
            for doc in load_yaml(path)}


def kubernetes_secrets(secret_files: dict[str, str]) -> dict[str, dict[str, str]]:
    """The Secrets kustomize would generate from these secret files."""
    (kustomization,) = load_yaml(K8S / "kustomization.yaml")
    return {generator["name"]: {key: secret_files[path.removeprefix("secrets/")]
                                for key, path in (e.split("=", 1) for e in generator["files"])}
            for generator in kustomization["secretGenerator"]}


def local_server_argv(argv: list[str], redis_port: int) -> tuple[list[str], int]:
    """A container's ``nbstream serve`` argv on 127.0.0.1 and a free port, its backplane
    pointing at the local Redis; the argv and the port."""
    port = free_port()
    argv = list(argv)
    argv[argv.index("--host") + 1] = "127.0.0.1"
    argv[argv.index("--port") + 1] = str(port)
    backplane = urlsplit(option(argv, "--backplane"))
    assert backplane.port == 6379
    netloc = backplane.netloc.replace(f"{backplane.hostname}:6379", f"127.0.0.1:{redis_port}")
    argv[len(argv) - 1 - argv[::-1].index("--backplane") + 1] = urlunsplit(
        backplane._replace(netloc=netloc))
    return argv, port


def child_env(variables: dict[str, str]) -> dict[str, str]:
    """This process's environment without NBSTREAM_ settings, plus the container's."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("NBSTREAM_")}
    return {**clean, **variables}


def check_the_server(server: NbstreamProcess, port: int, redis: Redis,
                     users: dict[str, str], secrets: list[str]) -> None:
    """Auth, the Redis password and JSON logs, checked on a running server."""
    url = f"ws://127.0.0.1:{port}/ws"
    server.wait_for(lambda line: "serving ws://" in line)
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{HEALTH_PATH}",
                                timeout=TIMEOUT) as response:
        health = json.load(response)
    assert health["status"] == "ok" and health["redis"] == "ok"

    client = nbstream.connect(url, token=users["alice"], timeout=TIMEOUT)
    assert client.chat("hi", timeout=TIMEOUT)[-1].type == "end"
    client.close()
    with pytest.raises(nbstream.StreamClosed) as wrong:
        nbstream.connect(url, token="not-" + users["bob"], reconnect=False)
    assert wrong.value.error is not None and wrong.value.error.code == "UNAUTHORIZED"
    with pytest.raises(nbstream.StreamClosed) as anonymous:
        nbstream.connect(url, user="mallory", reconnect=False)
    assert anonymous.value.error is not None and anonymous.value.error.code == "UNAUTHORIZED"
    # The backplane wrote to Redis, so it got past requirepass.
    assert redis.client.keys("nbstream:node:*")

    assert server.stop() == 0
    assert server.lines and all(line.startswith("{") for line in server.lines), server.lines
    records = server.records()
    assert any(r["message"].startswith("authentication: 2 user(s)") for r in records)
    assert [r for r in records if r.get("event") == "shutdown"]
    assert not any(secret in line for line in server.lines for secret in secrets)


def start_redis(argv: list[str], password: str, tmp_path: Path) -> Redis:
    """A Redis from a manifest's command, on a free port of 127.0.0.1."""
    import redis

    port = free_port()
    started = Redis([*argv, "--port", str(port), "--bind", "127.0.0.1", "--dir",
                     str(tmp_path)], port, password, tmp_path / "redis.log")
    anonymous = redis.Redis(port=port, socket_timeout=TIMEOUT)
    with pytest.raises(redis.AuthenticationError):  # requirepass holds
        anonymous.ping()
    anonymous.close()
    return started


@pytest.mark.timeout(120)
def test_kubernetes_pods_run_with_auth_a_redis_password_and_json_logs(
    image: Stage, secret_files: dict[str, str], tmp_path: Path, redis_binary: str,
) -> None:
    objects = kubernetes_objects()
    secrets = kubernetes_secrets(secret_files)
    password = secrets["nbstream-redis"]["password"]

    redis_pod = objects["Deployment", "nbstream-redis"]["spec"]["template"]["spec"]
    (redis_container,) = redis_pod["containers"]
    redis_mounts = mount_secrets(redis_pod, redis_container, secrets, tmp_path / "redis")
    redis_env = kubernetes_env(redis_container, secrets)
    redis_argv = [localize(expand(arg, redis_env), redis_mounts)
                  for arg in redis_container["command"] + redis_container["args"]]
    redis = start_redis(redis_argv, password.strip(), tmp_path)
    try:
        assert redis.client.config_get("maxmemory-policy") == \
            {"maxmemory-policy": "volatile-lru"}

        pod = objects["Deployment", "nbstream"]["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        mounts = mount_secrets(pod, container, secrets, tmp_path / "pod")
        env = {k: localize(v, mounts) for k, v in kubernetes_env(container, secrets).items()}
        args = [expand(arg, env) for arg in container["args"]]
        argv, port = local_server_argv(image.entrypoint + args, redis.port)
        server = NbstreamProcess(argv[1:], env=child_env(env))
        try:
            check_the_server(server, port, redis, tokens(secret_files["auth-users"]),
                             [password.strip(), *tokens(secret_files["auth-users"]).values()])
        finally:
            server.stop()
    finally:
        redis.stop()


@pytest.mark.timeout(120)
def test_compose_services_run_with_auth_a_redis_password_and_json_logs(
    image: Stage, secret_files: dict[str, str], redis_binary: str, tmp_path: Path,
) -> None:
    (compose,) = load_yaml(DEPLOY / "compose.yaml")
    run_secrets = tmp_path / "run" / "secrets"
    run_secrets.mkdir(parents=True)
    for name, spec in compose["secrets"].items():
        (run_secrets / name).write_text(secret_files[spec["file"].removeprefix("./secrets/")])
    mounts = {"/run/secrets": run_secrets}
    password = secret_files["redis-password"].strip()

    command = [localize(compose_literal(arg), mounts)
               for arg in compose["services"]["redis"]["command"]]
    redis = start_redis(command, password, tmp_path)
    try:
        service = compose["services"]["nbstream-1"]
        env = {k: localize(compose_literal(str(v)), mounts)
               for k, v in service["environment"].items()}
        argv, port = local_server_argv(image.entrypoint + service["command"], redis.port)
        server = NbstreamProcess(argv[1:], env=child_env(env))
        try:
            check_the_server(server, port, redis, tokens(secret_files["auth-users"]),
                             [password, *tokens(secret_files["auth-users"]).values()])
        finally:
            server.stop()
    finally:
        redis.stop()


def test_the_readiness_probe_path_is_answered(image: Stage, tmp_path: Path) -> None:
    port = free_port()
    server = NbstreamProcess(["serve", "--port", str(port), "--handler", "echo"],
                             env=child_env({}))
    try:
        server.wait_for(lambda line: "serving ws://" in line)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{READY_PATH}",
                                    timeout=TIMEOUT) as response:
            assert response.status == 200
    finally:
        server.stop()
