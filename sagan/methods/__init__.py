"""Registry of methods. CLI, tests and the workflow enumerate methods from here.

Every module of this package is imported on first use (found by listing the package), and each
method class registers itself with `@register`: adding a method is adding one module.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

from sagan.config import PRESETS
from sagan.errors import ConfigError
from sagan.experiments import GROUPS
from sagan.methods.base import Batch, Method, Prediction

_REGISTRY: dict[str, type[Method]] = {}
_scanned = False


def register(cls: type[Method]) -> type[Method]:
    """Class decorator: make a method known by its `name`."""
    if cls.name in _REGISTRY and _REGISTRY[cls.name] is not cls:
        raise ValueError(f"two methods are named {cls.name!r}: {_REGISTRY[cls.name]} and {cls}")
    if cls.group not in GROUPS:
        raise ValueError(f"{cls.__name__}.group = {cls.group!r}; use one of {GROUPS}")
    unknown = set(cls.PRESETS) - set(PRESETS)
    if unknown:
        raise ValueError(
            f"{cls.__name__}.PRESETS names unknown presets {sorted(unknown)}; known: {list(PRESETS)}"
        )
    _REGISTRY[cls.name] = cls
    return cls


def _scan() -> None:
    global _scanned
    if not _scanned:
        for module in pkgutil.iter_modules(__path__, prefix=f"{__name__}."):
            importlib.import_module(module.name)
        _scanned = True


def method_names() -> list[str]:
    _scan()
    return sorted(_REGISTRY)


def get_method(name: str) -> type[Method]:
    _scan()
    if name not in _REGISTRY:
        raise ConfigError(f"unknown method {name!r}; registered methods: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def cli_methods(args: Any) -> int:
    for name in method_names():
        cls = _REGISTRY[name]
        doc = (cls.__doc__ or "").strip().splitlines()[0]
        print(f"{name:12s} [{cls.group}] {doc}")
    return 0


__all__ = ["Batch", "Method", "Prediction", "register", "get_method", "method_names"]
