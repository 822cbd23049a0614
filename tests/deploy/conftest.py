"""What the deployment files must agree on: the image's command, port and paths."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pytest
import yaml

from nbstream.cli import build_parser
from tests.deploy.dockerfile import Stage, stages

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
HEALTH_PATH = "/health"
"""Where the server answers liveness checks (checked against a running server)."""
READY_PATH = "/ready"
"""Where the server answers readiness checks (checked against a running server)."""
METRICS_PATH = "/metrics"
"""Where ``nbstream serve`` answers Prometheus scrapes (checked the same way)."""


def serve_args(argv: list[str]) -> argparse.Namespace:
    """Parse a container's argv with the real CLI; it must be ``nbstream ... serve``."""
    assert argv[0] == "nbstream", argv
    args = build_parser().parse_args(argv[1:])
    assert args.command == "serve", argv
    return args


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
