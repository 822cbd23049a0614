"""What a container runtime would do with a manifest, done on this machine without one.

Kubernetes and Compose turn a container spec into an argv, an environment and files
(mounted Secrets). These helpers do the same with local paths, so that a test can run
the very command line a pod or a Compose service runs, with the variables and secret
files the manifests give it:

* :func:`kubernetes_env` resolves ``env`` entries (``value`` and ``secretKeyRef``);
  :func:`expand` applies Kubernetes' ``$(VAR)`` expansion to ``args``;
* :func:`mount_secrets` writes each mounted Secret's keys as files under a local root,
  and :func:`localize` moves container paths in values under that root;
* :func:`compose_literal` undoes Compose's ``$$`` escape.
"""

from __future__ import annotations

import re
import socket
import stat
from pathlib import Path
from typing import Any

Secrets = dict[str, dict[str, str]]
"""Secret name -> key -> value, as a cluster (or Compose) would hold them."""

_KUBERNETES_REFERENCE = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes' expansion of ``command``/``args``: ``$(VAR)`` from the container's
    env (left as it is when undefined), ``$$`` for a literal ``$``."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name is None:
            return "$"
        return env.get(name, match.group(0))

    return _KUBERNETES_REFERENCE.sub(replace, text)


def kubernetes_env(container: dict[str, Any], secrets: Secrets) -> dict[str, str]:
    """A container's environment: plain values and values from Secrets' keys."""
    env: dict[str, str] = {}
    for entry in container.get("env", []):
        if "value" in entry:
            env[entry["name"]] = expand(str(entry["value"]), env)
        else:
            ref = entry["valueFrom"]["secretKeyRef"]
            env[entry["name"]] = secrets[ref["name"]][ref["key"]]
    return env


def mount_secrets(pod: dict[str, Any], container: dict[str, Any], secrets: Secrets,
                  root: Path) -> dict[str, Path]:
    """Write every Secret volume the container mounts under ``root``, with the volume's
    file mode; container mount path -> local directory."""
    volumes = {volume["name"]: volume for volume in pod.get("volumes", [])}
    mounts: dict[str, Path] = {}
    for mount in container.get("volumeMounts", []):
        volume = volumes[mount["name"]]
        if "secret" not in volume:
            continue
        local = root / mount["mountPath"].lstrip("/")
        local.mkdir(parents=True)
        mode = volume["secret"].get("defaultMode", 0o644)
        for key, value in secrets[volume["secret"]["secretName"]].items():
            (local / key).write_text(value)
            (local / key).chmod(mode | stat.S_IRUSR)  # the test runs as the file's owner
        mounts[mount["mountPath"]] = local
    return mounts


def localize(text: str, mounts: dict[str, Path]) -> str:
    """``text`` (a path, or a shell script) with every container path under a mount
    moved to the mount's local directory."""
    for inside, local in mounts.items():
        text = text.replace(inside.rstrip("/") + "/", f"{local}/")
    return text


def compose_literal(text: str) -> str:
    """A Compose value as the container sees it: ``$$`` is a literal ``$``.

    Raises:
        AssertionError: for a single ``$`` (Compose would interpolate the host's
            environment there, which the deploy files never rely on).
    """
    assert "$" not in text.replace("$$", ""), f"host interpolation in {text!r}"
    return text.replace("$$", "$")


def memory_bytes(quantity: str) -> int:
    """A memory size in Kubernetes (``256Mi``), Compose (``256m``) or Redis (``160mb``)
    notation, in bytes."""
    match = re.fullmatch(r"(\d+)\s*([a-zA-Z]*)", quantity.strip())
    assert match, quantity
    number, unit = int(match.group(1)), match.group(2).lower()
    scale = {"": 1, "b": 1, "k": 1024, "ki": 1024, "kb": 1024, "m": 2**20, "mi": 2**20,
             "mb": 2**20, "g": 2**30, "gi": 2**30, "gb": 2**30}[unit]
    return number * scale


def option(args: list[str], name: str) -> str:
    """The value after ``name`` in an argv (the last one, as redis-server reads it)."""
    positions = [i for i, arg in enumerate(args) if arg == name]
    assert positions, f"{name} not in {args}"
    return args[positions[-1] + 1]
