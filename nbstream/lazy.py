"""Public names that load their module on first use (PEP 562), for nbstream's packages.

``import nbstream`` then costs tens of milliseconds, and a server or the command line
never imports pandas or the widgets it does not use.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping


def loader(package: str, exports: Mapping[str, str]) -> Callable[[str], object]:
    """A module ``__getattr__`` for ``package`` that imports ``exports[name]`` on first use
    and keeps the value in the package, so later lookups cost nothing."""
    namespace = sys.modules[package].__dict__

    def load(name: str) -> object:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value
        return value

    return load
