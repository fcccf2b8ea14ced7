"""Which source files a stage runs, and a fingerprint of their code: the rules list the fingerprint file as an
input, so editing a stage's code reruns that stage and what depends on it, and editing another stage's code,
or only a comment, a docstring or the layout of a file, does not (docs/ARCHITECTURE.md, "Stages").

The closure is read from the sources with :mod:`ast` (no import): every ``facemorphic`` module a file
imports, at module level or inside a function, followed transitively. Package ``__init__`` files are lazy
(:mod:`facemorphic._lazy`), so importing one submodule does not pull in its siblings; a rule that writes
synthetic RAW files with :mod:`facemorphic.events.evt3_writer` is therefore not rerun by an edit of
:mod:`facemorphic.events.stage`.
"""

from __future__ import annotations

import ast
import functools
import hashlib
from pathlib import Path

_DOCUMENTED = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)


def _module_file(src: Path, dotted: str) -> Path | None:
    base = src / Path(*dotted.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


@functools.lru_cache(maxsize=None)
def _parsed(path: Path, modified_ns: int) -> tuple[tuple[ast.Import | ast.ImportFrom, ...], str]:
    """A file's import statements (at any depth) and the dump of its code without docstrings, from one parse
    and one walk per file and version: the workflow asks at parse time for two dozen closures, which share
    most of their files (walking every file's tree for each closure took half of a dry run)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    imports = []
    for node in ast.walk(tree):  # the walk reads a node's children after this loop body has run
        body = getattr(node, "body", None)
        if isinstance(node, _DOCUMENTED) and body and isinstance(body[0], ast.Expr) \
                and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
            node.body = body[1:] or [ast.Pass()]
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            imports.append(node)
    return tuple(imports), ast.dump(tree, include_attributes=False)


def _parse(path: Path) -> tuple[tuple[ast.Import | ast.ImportFrom, ...], str]:
    return _parsed(path, path.stat().st_mtime_ns)


def _imported_modules(src: Path, path: Path) -> frozenset[str]:
    """Dotted names of the facemorphic modules (or names inside them) that one file imports."""
    return _imports_of(src, path, path.stat().st_mtime_ns)


@functools.lru_cache(maxsize=None)
def _imports_of(src: Path, path: Path, modified_ns: int) -> frozenset[str]:
    parts = path.relative_to(src).with_suffix("").parts
    package = parts[:-1]  # a module's package; for an __init__, the package itself (parts minus "__init__")
    found = set()
    for node in _parsed(path, modified_ns)[0]:
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.split(".")[0] == "facemorphic")
        else:
            if node.level:
                base = list(package[:len(package) - node.level + 1])
                module = ".".join(base + ([node.module] if node.module else []))
            elif node.module and node.module.split(".")[0] == "facemorphic":
                module = node.module
            else:
                continue
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return frozenset(found)


def source_closure(src: str | Path, packages: tuple[str, ...] | list[str]) -> list[Path]:
    """The files of ``facemorphic.<package>`` for each package, and every facemorphic file they import,
    sorted. ``src`` is the folder holding the ``facemorphic`` package."""
    src = Path(src)
    todo = [path for package in packages for path in (src / "facemorphic" / package).glob("*.py")]
    seen: set[Path] = set()
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for dotted in _imported_modules(src, path):
            names = dotted.split(".")
            for end in range(1, len(names) + 1):  # importing a.b.c runs a/__init__ and a/b/__init__ too
                found = _module_file(src, ".".join(names[:end]))
                if found is not None and found not in seen:
                    todo.append(found)
    return sorted(seen)


def code_fingerprint(src: str | Path, packages: tuple[str, ...] | list[str]) -> str:
    """SHA-256 of what the stage's files *do*: each file of :func:`source_closure` by its path under ``src``
    and its syntax tree without docstrings, line numbers or comments. Reformatting or documenting code keeps
    it; any change to the code, or to which files the stage imports, changes it."""
    src = Path(src)
    digest = hashlib.sha256()
    for path in source_closure(src, packages):
        digest.update(path.relative_to(src).as_posix().encode() + b"\0")
        digest.update(_parse(path)[1].encode() + b"\0")
    return digest.hexdigest()
