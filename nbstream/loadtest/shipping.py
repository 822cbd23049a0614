"""Shipping a plan's functions to worker processes and Dask workers, by value.

A scenario, a payload function or a ``type_key`` defined in a notebook cell lives in
``__main__``, which a spawned worker process or a Dask worker cannot import. They
travel with cloudpickle (as Dask ships tasks): the function's code and the values it
uses go with it. :func:`check_shippable` tries that before anything starts and names
what cannot travel (an open socket, a lock, a running server...).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import cloudpickle


def dumps(value: Any) -> bytes:
    """``value`` pickled by value where it must be (cloudpickle)."""
    data: bytes = cloudpickle.dumps(value)
    return data


def check_shippable(what: str, value: Any) -> None:
    """Make sure ``value`` (``what`` names its option) can travel to another process.

    Raises:
        TypeError: naming the value and, for a function, the variable it uses that
            cannot be pickled, with what to do instead.
    """
    try:
        dumps(value)
    except Exception as exc:  # pickling raises whatever the object's __reduce__ raises
        name = getattr(value, "__qualname__", type(value).__name__)
        culprit = _culprit(value)
        raise TypeError(
            f"{what}={name} cannot be shipped to worker processes: {culprit}"
            f"({type(exc).__name__}: {exc}). Create such objects inside the function "
            "(or per user, in the scenario), or run with processes=1 and no cluster."
        ) from exc


def _culprit(value: Any) -> str:
    """``"it uses NAME (TYPE), which cannot be pickled "`` for the first such variable."""
    if not callable(value):
        return ""
    try:
        variables = inspect.getclosurevars(_function(value))
    except (TypeError, ValueError):
        return ""
    for name, used in {**variables.nonlocals, **variables.globals}.items():
        if inspect.ismodule(used):
            continue
        try:
            dumps(used)
        except Exception:
            return f"it uses {name!r} ({type(used).__name__}), which cannot be pickled "
    return ""


def _function(value: Callable[..., Any]) -> Callable[..., Any]:
    func = getattr(value, "__func__", value)
    return func if inspect.isfunction(func) else type(func).__call__
