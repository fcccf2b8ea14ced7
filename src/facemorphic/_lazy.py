"""Lazy package exports (PEP 562): a package names what it offers without importing it, so option parsing,
``--help`` and the workflow's parse-time checks never pay for torch, numba or PyAV they do not use."""

from __future__ import annotations

import importlib


def lazy_exports(package: str, exports: dict[str, str]):
    """A module ``__getattr__`` that imports ``exports[name]`` (a submodule, relative to ``package``) on
    first access of ``name``."""

    def __getattr__(name: str):
        if name in exports:
            return getattr(importlib.import_module(exports[name], package), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
