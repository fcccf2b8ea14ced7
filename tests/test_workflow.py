"""The Snakemake workflow: dry run, lint, config validation and a tiny end-to-end ingest run."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
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


HOSTILE_USERS = ["u$(touch INJECTED)", "u 2", "u'3", "..hidden", "-rf"]


def test_hostile_names_never_run_and_are_rejected(tmp_path_factory):
    """Folder names that could break or run in a shell line: the dataset root, the working directory and
    user folders with `$(...)`, spaces and quotes. The safe user goes through ingest, events and landmarks;
    the unsafe ones are listed in rejects.csv; nothing is executed."""
    base = tmp_path_factory.mktemp("hostile")
    root = base / "data $(touch INJECTED) 'q'"
    ev = random_events(50, 5_000_000, 200_000, seed=3)
    for user in ["u01", *HOSTILE_USERS]:
        for rep in (1, 2):
            write_evt3_simple(root / user / "AU_12" / f"event_{rep}.raw", ev)
            write_mp4(root / user / "AU_12" / f"frames_{rep}.mp4", n_frames=4)
    workdir = base / "work dir $(touch INJECTED)"
    write_config(workdir, dataset__source="folder", dataset__root=str(root), landmarks__backend="dlib",
                 split__test_fraction=0.5)
    run_snakemake(workdir, "-c2", "results/manifest.csv", "results/events/u01.h5", "results/landmarks/u01.h5")
    assert not list(base.rglob("INJECTED")) and not (Path.cwd() / "INJECTED").exists()
    manifest = pd.read_csv(workdir / "results" / "manifest.csv")
    assert set(manifest.user) == {"u01"}
    rejects = pd.read_csv(workdir / "results" / "rejects.csv", keep_default_na=False)
    rejected = dict(zip(rejects.user, rejects.reason))
    for user in HOSTILE_USERS:
        if user.startswith("."):
            continue  # hidden folders are not user folders at all
        assert "is not of the form" in rejected[user], user
    assert (workdir / "logs" / "events" / "u01.log").exists()
    assert (workdir / "results" / "landmarks" / "u01.h5").stat().st_size > 0


@pytest.mark.parametrize("name", ["../../x", "a b", "$(touch INJECTED)", "x'y"])
def test_unsafe_experiment_names_stop_the_run_naming_the_key(tmp_path, name):
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config["experiments"] = {name: {"model": "coeff_lstm", "modality": "coefficients"}}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    proc = run_snakemake(tmp_path, "-n", "all", check=False)
    assert proc.returncode != 0
    assert "experiments" in proc.stdout + proc.stderr
    assert not (tmp_path / "INJECTED").exists() and not list(tmp_path.parent.rglob("x"))


@pytest.mark.parametrize("section, values, key", [
    ("events", {"representation": "voxel_grid", "bins": 1}, "bins"),
    ("events", {"representation": "tbr", "bins": 9}, "bins"),
    ("training", {"devices": "abc"}, "devices"),
    ("morphable", {"source": "released"}, "released_identity"),
])
def test_config_combinations_stop_at_parse_time_naming_the_key(tmp_path, section, values, key):
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config[section].update(values)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    proc = run_snakemake(tmp_path, "-n", "all", check=False)
    assert proc.returncode != 0 and key in proc.stdout + proc.stderr, proc.stdout[-2000:] + proc.stderr[-2000:]


def test_coefficient_model_on_events_stops_at_parse_time(tmp_path):
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config["experiments"] = {"bad": {"model": "coeff_lstm", "modality": "events"}}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    proc = run_snakemake(tmp_path, "-n", "all", check=False)
    assert proc.returncode != 0 and "experiments.bad" in proc.stdout + proc.stderr


def test_no_experiments_builds_up_to_the_shards(tmp_path):
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config["experiments"] = {}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    proc = run_snakemake(tmp_path, "-n", "all")
    text = proc.stdout + proc.stderr
    assert "rule shards:" in text and "rule train:" not in text


def test_more_cores_than_the_machine_never_oversubscribes(tmp_path):
    """With -c above the machine's cores, a training job claims proportionally more slots (so fewer run at
    once); its torch threads come from the config, never from -c (so -c cannot change a run's numbers)."""
    machine = os.cpu_count() or 1
    write_config(tmp_path)
    given = 4 * machine
    plans = {c: run_snakemake(tmp_path, "-n", "-p", f"-c{c}", "all").stdout for c in (1, given)}
    blocks = {c: [b for b in plan.split("\nrule ") if b.startswith("train:")] for c, plan in plans.items()}
    assert blocks[given]
    scale = given / machine
    for block in blocks[given]:
        slots = int(re.search(r"threads: (\d+)", block).group(1))
        told = json.loads(re.search(r"--options '(\{.*?\})'", block).group(1))["threads"]
        assert slots == min(given, int(np.ceil(min(told, machine) * scale)))
        assert told * (given // slots) <= machine  # the jobs that fit at once use at most the machine
    # the same command lines, threads of the numeric libraries included, whatever -c is
    commands = {c: sorted(re.findall(r"((?:[A-Z_]+=\d+ )+\S*python\S* -m facemorphic \w+ .*)", plan))
                for c, plan in plans.items()}
    assert commands[1] and commands[1] == commands[given]
    assert all("OPENBLAS_NUM_THREADS=1 " in command for command in commands[given])


def test_the_default_grid_gives_every_family_the_same_budget_seeds_and_a_chosen_lambda():
    """Tables 3-5 compare model families: none may train longer, on other clips or with another protocol, and
    the L_alpha weight of the event models with L_alpha is chosen on validation data by the sweep."""
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    overridden = {name: sorted(set(spec) - {"model", "modality", "lambda_alpha"})
                  for name, spec in config["experiments"].items()}
    assert not any(overridden.values()), overridden
    assert len(config["training"]["seeds"]) >= 3
    assert config["training"]["val_fraction"] > 0
    families = {spec["model"] for spec in config["experiments"].values()}
    assert families == {"coeff_transformer", "coeff_lstm", "resnet18_lstm", "resnet18_transformer", "i3d"}
    with_alpha = [spec for spec in config["experiments"].values() if spec.get("lambda_alpha", 0) != 0]
    assert {spec["model"] for spec in with_alpha} == {"resnet18_lstm", "resnet18_transformer", "i3d"}
    assert all(spec["lambda_alpha"] == "sweep" for spec in with_alpha)
