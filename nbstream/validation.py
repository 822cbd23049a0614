"""Checking options where they enter: right type, finite, in range, named in the error.

Options dataclasses declare each field's check in its metadata (``field(default=...,
metadata=number(...))``) and call :func:`validate` from ``__post_init__``. A bad value
raises ``TypeError`` (wrong kind of value) or ``ValueError`` (out of range), always
naming the call, the option and the value: ``serve(heartbeat_interval=nan): must be
a finite number > 0``.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import MISSING, dataclass, fields
from typing import Any

CHECK = "nbstream.check"
"""The metadata key of a field's check."""


@dataclass(frozen=True)
class Number:
    """An int or float (never a bool), finite, within bounds; ``integer`` for counts."""

    minimum: float | None = None
    exclusive: bool = False
    """True: the value must be greater than ``minimum``, not equal to it."""
    maximum: float | None = None
    integer: bool = False
    optional: bool = False

    def right_kind(self, value: Any) -> bool:
        """Whether ``value`` is a number of the right kind (None counts if optional)."""
        if value is None:
            return self.optional
        kinds = (int,) if self.integer else (int, float)
        return isinstance(value, kinds) and not isinstance(value, bool)

    def __call__(self, value: Any) -> str | None:
        if not self.right_kind(value):
            return self._wanted()
        if value is None:
            return None
        if not math.isfinite(value):
            return self._wanted()
        low, high = self.minimum, self.maximum
        if low is not None and (value <= low if self.exclusive else value < low):
            return self._wanted()
        if high is not None and value > high:
            return self._wanted()
        return None

    def _wanted(self) -> str:
        what = "an integer" if self.integer else "a finite number"
        bounds = []
        if self.minimum is not None:
            bounds.append(f"{'>' if self.exclusive else '>='} {self.minimum:g}")
        if self.maximum is not None:
            bounds.append(f"<= {self.maximum:g}")
        text = f"must be {what}" + (f" {' and '.join(bounds)}" if bounds else "")
        return text + (", or None" if self.optional else "")


@dataclass(frozen=True)
class OneOf:
    """One of a few values."""

    values: tuple[Any, ...]

    def __call__(self, value: Any) -> str | None:
        if value in self.values:
            return None
        return "must be one of " + ", ".join(repr(v) for v in self.values)


@dataclass(frozen=True)
class Kind:
    """An instance of one of ``types`` (``None`` allowed when ``optional``)."""

    types: tuple[type, ...]
    description: str
    optional: bool = False

    def __call__(self, value: Any) -> str | None:
        if value is None and self.optional:
            return None
        if isinstance(value, self.types):
            return None
        return f"must be {self.description}" + (", or None" if self.optional else "")


Check = Callable[[Any], str | None]
"""Returns None when the value is fine, else what it must be."""


def number(minimum: float | None = None, *, exclusive: bool = False,
           maximum: float | None = None, integer: bool = False,
           optional: bool = False) -> Mapping[str, Check]:
    """Field metadata for a numeric option."""
    return {CHECK: Number(minimum, exclusive, maximum, integer, optional)}


def seconds(*, optional: bool = False, zero: bool = False) -> Mapping[str, Check]:
    """Field metadata for a duration: finite and > 0 (>= 0 with ``zero``)."""
    return {CHECK: Number(0.0, not zero, optional=optional)}


def count(minimum: int = 0, *, optional: bool = False) -> Mapping[str, Check]:
    """Field metadata for a whole number of things."""
    return {CHECK: Number(minimum, integer=True, optional=optional)}


def one_of(*values: Any) -> Mapping[str, Check]:
    """Field metadata for an option that takes one of a few values."""
    return {CHECK: OneOf(values)}


def kind(*types: type, description: str, optional: bool = False) -> Mapping[str, Check]:
    """Field metadata for an option that must be an instance of ``types``."""
    return {CHECK: Kind(types, description, optional)}


def validate(options: Any, call: str) -> None:
    """Check every field of the dataclass ``options`` that declares a check.

    Raises:
        TypeError: a value of the wrong kind, naming ``call``, the option and the value.
        ValueError: a value out of range, likewise.
    """
    for f in fields(options):
        check = f.metadata.get(CHECK)
        if check is None:
            continue
        value = getattr(options, f.name)
        problem = check(value)
        if problem is not None:
            wrong_kind = isinstance(check, Kind) or (
                isinstance(check, Number) and not check.right_kind(value))
            error = TypeError if wrong_kind else ValueError
            raise error(f"{call}({f.name}={value!r}): {problem}")


def unknown(options: Mapping[str, Any], known: set[str], call: str) -> None:
    """Refuse keyword options that ``call`` does not take, listing the ones it does.

    Raises:
        TypeError: naming the unknown options.
    """
    extra = sorted(set(options) - known)
    if extra:
        raise TypeError(f"{call}() got unknown option(s) {', '.join(extra)}; known: "
                        f"{', '.join(sorted(known))}")


def signature_of(func: Callable[..., Any], options: type[Any],
                 positional: Sequence[inspect.Parameter], *,
                 exclude: frozenset[str] | set[str] = frozenset(),
                 rest: str | None = None) -> inspect.Signature:
    """``func``'s signature with each field of the dataclass ``options`` as a keyword,
    and ``**rest`` last when given."""
    params = list(positional)
    for f in fields(options):
        if f.name in exclude:
            continue
        default = f.default if f.default is not MISSING else inspect.Parameter.empty
        params.append(inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY,
                                        default=default, annotation=f.type))
    if rest is not None:
        params.append(inspect.Parameter(rest, inspect.Parameter.VAR_KEYWORD))
    return inspect.signature(func).replace(parameters=params)
