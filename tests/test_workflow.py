"""The Snakemake workflow: dry run, lint, config validation and a tiny end-to-end ingest run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from media import random_events, write_evt3_simple, write_mp4

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile")]


def run_snakemake(workdir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
    proc = subprocess.run([*SNAKEMAKE, "--directory", str(workdir), *args], capture_output=True, text=True,
                          env=env, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return proc


@pytest.fixture(scope="module")
def folder_dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("ds")
    ev = random_events(50, 5_000_000, 200_000, seed=2)
    for user in ("u01", "u02", "u03"):
        for au in (1, 12):
            for rep in (1, 2):
                write_evt3_simple(root / user / f"AU_{au}" / f"event_{rep}.raw", ev)
                write_mp4(root / user / f"AU_{au}" / f"frames_{rep}.mp4", n_frames=4)
    write_evt3_simple(root / "u03" / "AU_2" / "event_1.raw", ev)  # no RGB partner: a reject
    return root


def write_config(workdir: Path, **overrides) -> Path:
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    for key, value in overrides.items():
        section, name = key.split("__")
        config[section][name] = value
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_dry_run_and_lint_on_the_default_config(tmp_path):
    write_config(tmp_path)
    dry = run_snakemake(tmp_path, "-n", "all")
    assert "ingest_user" in dry.stdout + dry.stderr
    lint = run_snakemake(tmp_path, "--lint", check=False)
    assert lint.returncode == 0, lint.stdout + lint.stderr


def test_wrong_config_value_stops_at_parse_time_naming_the_key(tmp_path):
    write_config(tmp_path, split__protocol="random")
    proc = run_snakemake(tmp_path, "-n", "all", check=False)
    assert proc.returncode != 0
    message = proc.stdout + proc.stderr
    assert "protocol" in message and "'random' is not one of ['video', 'subject']" in message


def test_tiny_end_to_end_run_writes_the_manifest(tmp_path, folder_dataset):
    write_config(tmp_path, dataset__source="folder", dataset__root=str(folder_dataset),
                 split__protocol="subject", split__test_fraction=0.34)
    run_snakemake(tmp_path, "-c2", "results/manifest.csv")
    manifest = pd.read_csv(tmp_path / "results" / "manifest.csv")
    assert len(manifest) == 12 and set(manifest.user) == {"u01", "u02", "u03"}
    assert manifest.groupby("user")["split"].nunique().max() == 1
    assert (manifest.split == "test").sum() == 4
    rejects = pd.read_csv(tmp_path / "results" / "rejects.csv")
    assert list(rejects.recording_id) == ["u03_AU_2_1"]
    assert (tmp_path / "logs" / "ingest" / "u01.log").exists()
    # A changed split value reruns the merge only, never the per-user probes.
    write_config(tmp_path, dataset__source="folder", dataset__root=str(folder_dataset),
                 split__protocol="video", split__test_fraction=0.5)
    plan = run_snakemake(tmp_path, "results/manifest.csv", "-n", "--quiet", "rules")
    text = plan.stdout + plan.stderr
    assert "split" in text and "ingest_user" not in text
