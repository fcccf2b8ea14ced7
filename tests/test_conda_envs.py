"""Each rule's conda environment (`envs/<stage>.yaml`, used with `--sdm conda`) holds every third-party package
that the code it runs imports: the stage packages the rule lists as code inputs, followed through every
facemorphic import they make (module-level or inside functions), so nothing fails at run time in conda."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src"
#: import name -> conda-forge package name
CONDA_NAMES = {
    "numpy": "numpy", "numba": "numba", "scipy": "scipy", "h5py": "h5py", "hdf5plugin": "hdf5plugin",
    "pandas": "pandas", "av": "av", "PIL": "pillow", "tqdm": "tqdm", "sklearn": "scikit-learn",
    "skimage": "scikit-image", "matplotlib": "matplotlib-base", "torch": "pytorch", "torchvision": "torchvision",
    "pytorch_lightning": "pytorch-lightning", "lightning_fabric": "pytorch-lightning", "yaml": "pyyaml",
    "jsonschema": "jsonschema", "dlib": "dlib", "cv2": "opencv", "threadpoolctl": "threadpoolctl",
    "face_alignment": "face-alignment", "face_recognition_models": "face-recognition-models",
}
#: modules that the packages above import themselves (they come with them)
DEPENDENCIES_OF_DEPENDENCIES = {
    "llvmlite", "dateutil", "pytz", "tzdata", "six", "packaging", "typing_extensions", "sympy", "mpmath",
    "networkx", "jinja2", "markupsafe", "fsspec", "filelock", "lightning_utilities", "torchmetrics",
    "pyparsing", "cycler", "kiwisolver", "fontTools", "contourpy", "joblib", "imageio",
    "lazy_loader", "tifffile", "certifi", "charset_normalizer", "idna", "urllib3", "requests",
    "google", "attr", "attrs", "pkg_resources", "setuptools", "distutils", "psutil", "tensorboard",
    "tensorboardX", "numpy_groupies", "opt_einsum", "triton", "nvidia", "cuda", "optree", "scipy_openblas64_",
    "more_itertools", "zipp", "importlib_metadata", "platformdirs", "pydantic", "pydantic_core",
    "annotated_types", "aiohttp", "multidict", "yarl", "frozenlist", "aiosignal", "propcache",
    "aiohappyeyeballs", "async_timeout", "mkl", "colorama", "wheel", "cloudpickle", "cython_runtime", "pyarrow",
    "mpl_toolkits", "torchgen",
}


def is_module(name: str) -> bool:
    base = SRC / Path(*name.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def optional_import_lines(tree: ast.AST) -> set[int]:
    """Lines of imports inside `try:` blocks that handle ImportError: optional, the code works without."""
    lines = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Try) and any(
                isinstance(h.type, ast.Name) and h.type.id in ("ImportError", "ModuleNotFoundError")
                for h in node.handlers):
            for child in node.body:
                for inner in ast.walk(child):
                    if isinstance(inner, (ast.Import, ast.ImportFrom)):
                        lines.add(inner.lineno)
    return lines


def function_level_imports(path: Path) -> tuple[set[str], set[str]]:
    """(facemorphic modules, third-party top-level names) imported inside functions of one file."""
    tree = ast.parse(path.read_text())
    optional = optional_import_lines(tree)
    package = ".".join(path.relative_to(SRC).with_suffix("").parts[:-1])
    internal, external = set(), set()
    for function in ast.walk(tree):
        if not isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for node in ast.walk(function):
            if getattr(node, "lineno", None) in optional:
                continue
            if isinstance(node, ast.Import):
                for alias in node.names:
                    (internal if alias.name.startswith("facemorphic") else external).add(alias.name)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[:len(package.split(".")) - node.level + 1]
                    target = ".".join(base + ([node.module] if node.module else []))
                    internal.update(f"{target}.{alias.name}" for alias in node.names)
                    internal.add(target)
                elif node.module.startswith("facemorphic"):
                    internal.add(node.module)
                else:
                    external.add(node.module)
    return internal, {name.split(".")[0] for name in external}


def third_party_imports(packages: list[str]) -> set[str]:
    """What running the stage imports: every module of its packages and the facemorphic modules their
    functions import, really imported in a fresh interpreter (module-level imports, exactly), plus the
    third-party names their functions import (without importing them)."""
    modules, external = set(), set()
    for package in packages:
        for path in sorted((SRC / "facemorphic" / package).glob("*.py")):
            modules.add(".".join(path.relative_to(SRC).with_suffix("").parts).removesuffix(".__init__"))
            internal, names = function_level_imports(path)
            modules |= internal
            external |= names
    modules = {name for name in modules if is_module(name)}  # drop `from module import function` names
    code = ("import importlib, json, sys\n"
            f"for name in {sorted(modules)!r}:\n"
            "    importlib.import_module(name)\n"
            "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] == 'facemorphic')))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-2000:]
    for name in json.loads(proc.stdout.strip().splitlines()[-1]):
        base = SRC / Path(*name.split("."))
        path = base.with_suffix(".py") if base.with_suffix(".py").is_file() else base / "__init__.py"
        external |= module_level_imports(path)
    return external


def module_level_imports(path: Path) -> set[str]:
    """Third-party top-level names a facemorphic module imports when it is loaded (not inside functions, not
    optional ones), i.e. what the code itself needs; what those packages import in turn is theirs."""
    tree = ast.parse(path.read_text())
    optional = optional_import_lines(tree)
    names = set()
    todo = list(tree.body)
    while todo:
        node = todo.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            continue
        if getattr(node, "lineno", None) in optional:
            continue
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and not node.level:
            names.add(node.module.split(".")[0])
        else:
            todo += [child for child in ast.iter_child_nodes(node) if isinstance(child, ast.stmt)]
    return {name for name in names if name != "facemorphic"}


def rule_environments() -> list[tuple[str, str, list[str]]]:
    """(rule, env file, stage packages) for every rule with a conda environment."""
    found = []
    for rule_file in sorted((REPO / "workflow" / "rules").glob("*.smk")):
        text = rule_file.read_text()
        for block in re.split(r"\n(?=rule \w+:)", text):
            match = re.match(r"rule (\w+):", block)
            env = re.search(r'conda:\s*\n\s*"\.\./\.\./(envs/[\w.]+)"', block)
            code = re.search(r"stage_code\(([^)]*)\)", block)
            if match and env and code:
                packages = re.findall(r'"(\w+)"', code.group(1))
                found.append((match.group(1), env.group(1), packages))
    return found


def conda_packages(env_file: str) -> set[str]:
    dependencies = yaml.safe_load((REPO / env_file).read_text())["dependencies"]
    names = set()
    for entry in dependencies:
        items = entry["pip"] if isinstance(entry, dict) else [entry]
        names |= {re.split(r"[<>=!\s]", item, maxsplit=1)[0].lower() for item in items}
    return names


@pytest.fixture(scope="module")
def imports_by_packages() -> dict[tuple[str, ...], set[str]]:
    """What each distinct set of stage packages imports, the interpreters run two at a time."""
    keys = sorted({tuple(packages) for _, _, packages in rule_environments()})
    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(zip(keys, pool.map(lambda key: third_party_imports(list(key)), keys)))


def test_every_rule_with_code_has_an_environment():
    assert len(rule_environments()) >= 11


@pytest.mark.parametrize("rule, env_file, packages", rule_environments(), ids=lambda v: str(v))
def test_environment_holds_what_the_rule_imports(rule, env_file, packages, imports_by_packages):
    imported = imports_by_packages[tuple(packages)]
    third_party = {name for name in imported if name not in sys.stdlib_module_names and not name.startswith("_")
                   and name != "facemorphic"}
    unknown = sorted(third_party - set(CONDA_NAMES) - DEPENDENCIES_OF_DEPENDENCIES)
    assert not unknown, f"{rule}: imports without a known conda package: {unknown}"
    needed = {CONDA_NAMES[name] for name in imported if name in CONDA_NAMES}
    missing = sorted(needed - conda_packages(env_file))
    assert not missing, f"{rule} ({env_file}) lacks {missing}"
