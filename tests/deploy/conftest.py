"""What the deployment files must agree on: the image's command, port, paths and secrets."""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import secrets
import shutil
import subprocess
import time
import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from nbstream.cli import parse_args
from tests.conftest import TIMEOUT
from tests.deploy.dockerfile import Stage, stages

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
HEALTH_PATH = "/health"
"""Liveness: where the server answers while its process and loop live (checked live)."""
READY_PATH = "/ready"
"""Readiness: where the server says whether it can do its job (backplane reachable)."""
METRICS_PATH = "/metrics"
"""Where ``nbstream serve`` answers Prometheus scrapes (checked the same way)."""
SECRET_FILES = ("redis-password", "auth-users")
"""The secret files the deploy files read (deploy/secrets/, deploy/kubernetes/secrets/);
the comments at the top of compose.yaml and kustomization.yaml make them."""


def serve_args(argv: list[str], environ: Mapping[str, str] | None = None
               ) -> argparse.Namespace:
    """Parse a container's argv and environment with the real CLI; it must be
    ``nbstream ... serve``."""
    assert argv[0] == "nbstream", argv
    args = parse_args(argv[1:], environ or {})
    assert args.command == "serve", argv
    return args


def pinned(image: str) -> bool:
    """True for an image named with an exact release (``redis:7.2.5-alpine``), not a
    moving tag (``redis:7-alpine``, ``latest``); a digest may follow."""
    return re.fullmatch(r"[\w./-]+:\d+\.\d+\.\d+(?:-[\w.-]+)?(?:@sha256:[0-9a-f]{64})?",
                        image) is not None


def project_version() -> str:
    """The version in pyproject.toml: the nbstream image's tag."""
    version: str = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    return version


def load_yaml(path: Path) -> list[dict[str, Any]]:
    """Every document of a YAML file (safe loader), empty documents skipped."""
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


@pytest.fixture(scope="session")
def image() -> Stage:
    """The final stage of deploy/Dockerfile: the image that is deployed."""
    return stages(DEPLOY / "Dockerfile")[-1]


@pytest.fixture(scope="session")
def image_args(image: Stage) -> argparse.Namespace:
    """The image's ENTRYPOINT + CMD as ``nbstream serve`` reads them."""
    return serve_args(image.argv)


@pytest.fixture
def secret_files() -> dict[str, str]:
    """Fresh contents of the secret files, made as the deploy files' comments say."""
    return {"redis-password": secrets.token_hex(24) + "\n",
            "auth-users": f"alice:{secrets.token_hex(24)}\nbob:{secrets.token_hex(24)}\n"}


def tokens(users_file: str) -> dict[str, str]:
    """User -> token, from the content of an auth-users file."""
    return dict(line.split(":", 1) for line in users_file.split())


def _missing(what: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{what} is missing on CI, where .ci/run installs it")
    pytest.skip(f"{what} is not installed")


class Redis:
    """A redis-server started with a manifest's arguments, on a free port of 127.0.0.1."""

    def __init__(self, argv: list[str], port: int, password: str, log: Path) -> None:
        self.port, self.password = port, password
        self._log = log.open("wb")
        self.process = subprocess.Popen(argv, stdout=self._log, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL)
        self.client = self._connect(log)

    def _connect(self, log: Path) -> Any:
        import redis

        client = redis.Redis(port=self.port, password=self.password, socket_timeout=TIMEOUT)
        deadline = time.monotonic() + 3 * TIMEOUT
        while True:
            assert self.process.poll() is None, log.read_text()
            try:
                client.ping()
                return client
            except redis.ConnectionError:
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.05)

    def stop(self) -> None:
        """Stop it (safe to call twice)."""
        self.client.close()
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(TIMEOUT)
        self._log.close()


@pytest.fixture
def redis_binary() -> Iterator[str]:
    """redis-server and redis-py, which these tests need."""
    binary = shutil.which("redis-server")
    if binary is None:
        _missing("redis-server (apt-get install redis-server)")
    if importlib.util.find_spec("redis") is None:
        _missing("redis-py (pip install 'nbstream[redis]')")
    assert binary is not None
    yield binary
