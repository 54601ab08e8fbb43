"""Registry of methods. CLI, tests and the workflow enumerate methods from here."""

from __future__ import annotations

from sagan.errors import ConfigError
from sagan.methods.base import Batch, Method

_REGISTRY: dict[str, type[Method]] = {}


def register(cls: type[Method]) -> type[Method]:
    _REGISTRY[cls.name] = cls
    return cls


def _load_builtin() -> None:
    # importing the modules registers their classes
    from sagan.methods import ae, brainomaly, sagan  # noqa: F401


def method_names() -> list[str]:
    _load_builtin()
    return sorted(_REGISTRY)


def get_method(name: str) -> type[Method]:
    _load_builtin()
    if name not in _REGISTRY:
        raise ConfigError(f"unknown method {name!r}; registered methods: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def cli_methods(args) -> int:
    for name in method_names():
        cls = _REGISTRY[name]
        doc = (cls.__doc__ or "").strip().splitlines()[0]
        print(f"{name:12s} [{cls.group}] {doc}")
    return 0


__all__ = ["Batch", "Method", "register", "get_method", "method_names"]
