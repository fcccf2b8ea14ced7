"""Shared pytest fixtures: where the real data lives, and small helpers."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
#: Real Prophesee recordings and annotated faces, beside the repository (never needed by the pipeline).
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The ``../shared/data`` folder; tests that need it are skipped with a reason where it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real reference data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny tensors on a shared 2-core machine: one torch thread avoids oversubscription stalls."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def copy_project(destination: Path) -> Path:
    """The workflow and the package sources in a project folder of their own, as a user's checkout is."""
    destination.mkdir(parents=True, exist_ok=True)
    shutil.copy2(REPO_ROOT / "Snakefile", destination / "Snakefile")
    for folder in ("workflow", "envs"):
        shutil.copytree(REPO_ROOT / folder, destination / folder, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO_ROOT / "src" / "facemorphic", destination / "src" / "facemorphic",
                    ignore=shutil.ignore_patterns("__pycache__"))
    return destination


@pytest.fixture(scope="session")
def tiny_pipeline(tmp_path_factory) -> Path:
    """One complete run of tests/config.tiny.yaml (every stage) in a project folder of its own (Snakefile,
    workflow/ and src/ beside config.yaml and results/), shared by the tests that read its results or plan
    reruns against it. Its folder must not be changed by them."""
    workdir = copy_project(tmp_path_factory.mktemp("tiny-pipeline") / "project")
    config = yaml.safe_load((REPO_ROOT / "tests" / "config.tiny.yaml").read_text())
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    proc = subprocess.run([sys.executable, "-m", "snakemake", "-c2", "all"], capture_output=True, text=True,
                          timeout=1800, cwd=workdir)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return workdir
