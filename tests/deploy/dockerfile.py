"""Just enough of a Dockerfile parser to test what the built image would run, without Docker.

Only what deploy/Dockerfile uses: comments, backslash continuations, exec-form (JSON)
ENTRYPOINT, CMD and HEALTHCHECK CMD. A shell-form command is an error here, not a
case to handle: it would make /bin/sh PID 1, and sh does not pass SIGTERM on.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Stage:
    """One build stage: the instructions that shape the image it produces."""

    base: str
    name: str = ""
    copies: list[list[str]] = field(default_factory=list)
    runs: list[str] = field(default_factory=list)
    user: str = "root"
    expose: list[str] = field(default_factory=list)
    entrypoint: list[str] = field(default_factory=list)
    cmd: list[str] = field(default_factory=list)
    healthcheck: list[str] = field(default_factory=list)
    healthcheck_options: dict[str, str] = field(default_factory=dict)

    @property
    def argv(self) -> list[str]:
        """What the container runs when no arguments are given: ENTRYPOINT + CMD."""
        return self.entrypoint + self.cmd


def instructions(text: str) -> list[tuple[str, str]]:
    """(KEYWORD, rest) pairs, continuation lines joined and comment lines dropped."""
    result: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, rest = (pending + line).partition(" ")
        result.append((keyword.upper(), rest.strip()))
        pending = ""
    return result


def exec_form(value: str) -> list[str]:
    """A JSON array of strings, as in ``CMD ["a", "b"]``; anything else raises."""
    parsed = json.loads(value)
    if not (isinstance(parsed, list) and all(isinstance(a, str) for a in parsed)):
        raise ValueError(f"not an exec-form command: {value}")
    return parsed


def stages(path: Path) -> list[Stage]:
    """The build stages of a Dockerfile, in order; the last one is the image."""
    result: list[Stage] = []
    for keyword, rest in instructions(path.read_text()):
        if keyword == "FROM":
            base, *alias = rest.split()
            result.append(Stage(base, alias[-1] if alias else ""))
            continue
        stage = result[-1]
        if keyword == "COPY":
            stage.copies.append(shlex.split(rest))
        elif keyword == "RUN":
            stage.runs.append(rest)
        elif keyword == "USER":
            stage.user = rest
        elif keyword == "EXPOSE":
            stage.expose += rest.split()
        elif keyword == "ENTRYPOINT":
            stage.entrypoint, stage.cmd = exec_form(rest), []  # Docker resets CMD here
        elif keyword == "CMD":
            stage.cmd = exec_form(rest)
        elif keyword == "HEALTHCHECK":
            options, _, command = rest.partition("CMD ")
            stage.healthcheck = exec_form(command)
            stage.healthcheck_options = dict(
                option.removeprefix("--").split("=", 1) for option in options.split())
    return result
