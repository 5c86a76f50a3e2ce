"""Lazy package exports (PEP 562): a package names what it exports without importing it.

Importing ``ulsam_search`` or reading a config then costs no torch, Ray or Optuna import; the name is imported from
its module the first time it is used. Each package lists its exports in a dict literal ``_EXPORTS`` (name ->
module relative to the package), which the import-graph test reads as the package's imports.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable


def lazy_exports(package: str, exports: dict[str, str]) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package`` that import ``exports[name]`` on first use."""

    def __getattr__(name: str) -> object:
        try:
            module = exports[name]
        except KeyError:
            raise AttributeError(f"module {package!r} has no attribute {name!r}") from None
        return getattr(importlib.import_module(module, package), name)

    def __dir__() -> list[str]:
        return sorted(exports)

    return __getattr__, __dir__
