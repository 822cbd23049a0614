"""Command-line values of the ``nbstream`` sub-commands: checked types, flags that
environment variables can set too, and secrets read from files or the environment.

Containers are configured through their environment, and a Kubernetes Secret arrives
as a file or an environment variable; so every :class:`EnvFlag` also reads
``NBSTREAM_<NAME>`` (``--max-connections`` from ``NBSTREAM_MAX_CONNECTIONS``). The
command line wins over the environment, the environment over the default. Secrets
never come from the command line, which ``ps`` and pod specs show to anyone:
:func:`read_secret` takes them from a file or an environment variable.

A bad value, wherever it came from, is a :class:`UsageError`: one line naming the flag
or variable (never a secret's value) and exit status 2, as argparse does.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

ENV_PREFIX = "NBSTREAM_"
"""Environment variables that set flags are named ``NBSTREAM_`` + the flag's name."""


class UsageError(Exception):
    """A bad value from the command line, the environment or a file (exit status 2)."""


class Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line and exit with status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


# -- checked types (argparse ``type=``; their ValueError becomes argparse's one line) ----

def port(text: str) -> int:
    """A TCP port, 0-65535 (0: any free port)."""
    value = _whole(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"a port is 0-65535, got {value}")
    return value


def positive_int(text: str) -> int:
    """A whole number of at least 1."""
    value = _whole(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def positive_float(text: str) -> float:
    """A finite number greater than 0."""
    value = _finite(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be greater than 0, got {text}")
    return value


def non_negative_float(text: str) -> float:
    """A finite number of 0 or more."""
    value = _finite(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, got {text}")
    return value


def fraction(text: str) -> float:
    """A number from 0 to 1 (0.01 is 1 %)."""
    value = _finite(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text}")
    return value


def _whole(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None


def _finite(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
    return value


def switch(text: str) -> bool:
    """An environment variable's on/off: 1, true, yes, on (or 0, false, no, off)."""
    word = text.strip().lower()
    if word in ("1", "true", "yes", "on"):
        return True
    if word in ("0", "false", "no", "off", ""):
        return False
    raise argparse.ArgumentTypeError(f"expected 1/true/yes/on or 0/false/no/off, got {text!r}")


# -- flags that environment variables can set -------------------------------------------

@dataclass(frozen=True)
class EnvFlag:
    """A ``--flag`` that ``NBSTREAM_FLAG`` sets when the command line does not."""

    flag: str
    help: str
    convert: Callable[[str], Any] = str
    default: Any = None
    choices: tuple[str, ...] | None = None
    many: bool = False
    """Repeatable flag; the environment variable holds a comma-separated list."""
    is_switch: bool = False
    """An on/off flag without a value; the environment variable holds 1/0, true/false."""
    metavar: str | None = None
    variable: str | None = None
    """The environment variable, when not ``NBSTREAM_`` + the flag's name."""

    @property
    def dest(self) -> str:
        """The attribute of the parsed arguments."""
        return self.flag.lstrip("-").replace("-", "_")

    @property
    def env(self) -> str:
        """The environment variable that sets it."""
        return self.variable or ENV_PREFIX + self.dest.upper()

    def add_to(self, parser: argparse.ArgumentParser) -> None:
        """Declare it on ``parser``; unset, it stays None until :func:`resolve`."""
        shown = f" (default {self.default})" if self.default not in (None, False) else ""
        text = f"{self.help}{shown} [env {self.env}]"
        if self.is_switch:
            parser.add_argument(self.flag, action="store_const", const=True, default=None,
                                help=text)
        else:
            parser.add_argument(self.flag, type=self.convert, choices=self.choices,
                                action="append" if self.many else "store", default=None,
                                metavar=self.metavar, help=text)

    def from_env(self, raw: str) -> Any:
        """The value of the environment variable, checked as the flag's would be."""
        try:
            if self.is_switch:
                return switch(raw)
            if self.many:
                return [self.convert(item.strip()) for item in raw.split(",") if item.strip()]
            value = self.convert(raw.strip())
        except (ValueError, argparse.ArgumentTypeError) as exc:
            raise UsageError(f"{self.env}={raw!r}: {exc}") from None
        if self.choices is not None and value not in self.choices:
            raise UsageError(f"{self.env}={raw!r}: choose from {', '.join(self.choices)}")
        return value


def add_flags(parser: argparse.ArgumentParser, flags: Iterable[EnvFlag]) -> None:
    """Declare ``flags`` on ``parser``."""
    for flag in flags:
        flag.add_to(parser)


def resolve(args: argparse.Namespace, flags: Iterable[EnvFlag],
            environ: Mapping[str, str]) -> None:
    """Fill in each flag not given on the command line from its variable, else its default.

    Raises:
        UsageError: naming the variable whose value is not valid.
    """
    for flag in flags:
        if getattr(args, flag.dest, None) is not None:
            continue
        raw = environ.get(flag.env)
        setattr(args, flag.dest, flag.from_env(raw) if raw else flag.default)


# -- secrets ----------------------------------------------------------------------------

def read_secret(what: str, path: str | None, env: str,
                environ: Mapping[str, str]) -> tuple[str, str] | None:
    """A secret and where it came from: the file ``path`` (a ``--...-file`` flag, or
    ``$<env>_FILE``), else the variable ``env``; None when none of them is set.

    Surrounding whitespace (a Secret file's final newline) is dropped.

    Raises:
        UsageError: if the file cannot be read or the secret is empty; the message
            names the file or variable, never the value.
    """
    path = path or environ.get(env + "_FILE") or None
    if path is not None:
        try:
            value, source = Path(path).read_text(encoding="utf-8").strip(), path
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
            raise UsageError(f"cannot read the {what} from {path}: {reason}") from None
    elif environ.get(env) is not None:
        value, source = environ[env].strip(), f"${env}"
    else:
        return None
    if not value:
        raise UsageError(f"the {what} in {source} is empty")
    return value, source
