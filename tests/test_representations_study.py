"""The event representation study (`snakemake representations`): its table from run folders of known
predictions, the study's jobs on top of the tiny pipeline, and its config checks at parse time."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from facemorphic import ACTION_UNITS
from facemorphic.cli import main
from facemorphic.evaluation.tables import PAPER_RESULTS, SUMMARY_COLUMNS, bootstrap_interval

REPO = Path(__file__).resolve().parents[1]


def write_run(folder: Path, seed: int, labels, predicted_or_miss) -> None:
    """A run folder whose test predictions are known: ``predicted_or_miss[i]`` is the class recording i is
    given (its true class then ranks last among the 24 when it is another class, so it misses at every k)."""
    folder.mkdir(parents=True)
    n = len(labels)
    logits = np.zeros((n, len(ACTION_UNITS)))
    for i, (label, predicted) in enumerate(zip(labels, predicted_or_miss)):
        logits[i, predicted] = 10.0
        if predicted != label:
            logits[i, label] = -10.0
    frame = pd.DataFrame({"recording_id": [f"r{i}" for i in range(n)], "user": "u", "split": "test",
                          "au": [ACTION_UNITS[label] for label in labels], "label": labels})
    for c, au in enumerate(ACTION_UNITS):
        frame[f"logit_AU{au}"] = logits[:, c]
    val = frame.iloc[:2].assign(split="val", label=7)  # validation rows never count
    pd.concat([frame, val]).to_csv(folder / "predictions.csv", index=False)
    (folder / "run.json").write_text(json.dumps(dict(
        experiment="resnet18_lstm_events", model="resnet18_lstm", modality="events", lambda_alpha=0.0, seed=seed,
        epochs=5, val_fraction=0.0, backbone_weights="random-init:seed=0")))


def test_table_rows_are_the_variants_known_scores(tmp_path):
    labels = [0, 1, 2, 3]
    runs = {  # (variant, seed) -> predicted class per recording
        ("periodic", 0): [0, 1, 2, 3],  # 4 of 4
        ("periodic", 1): [0, 1, 5, 6],  # 2 of 4, wrong guesses spread over classes
        ("voxel", 0): [0, 0, 0, 0],  # one class for every clip: 1 of 4, flagged
    }
    arguments = []
    for (variant, seed), predicted in runs.items():
        folder = tmp_path / variant / f"seed-{seed}"
        write_run(folder, seed, labels, predicted)
        arguments.append(f"{variant}={folder}")
    parameters = {
        "periodic": {"representation": "periodic_frame", "palette": "dark", "width": 320, "height": 0,
                     "subwindows": 1, "accumulation_us": 0},
        "voxel": {"representation": "voxel_grid", "bins": 5, "width": 320, "height": 0, "subwindows": 1,
                  "accumulation_us": 0},
    }
    assert main(["evaluate", "--representation-runs", *arguments, "--representation-variants",
                 json.dumps(parameters), "--out-dir", str(tmp_path / "tables"), "--data-source", "synthetic"]) == 0
    table = pd.read_csv(tmp_path / "tables" / "table6_representations.csv", keep_default_na=False,
                        dtype={"bins": str, "palette": str, "tau_us": str})
    assert list(table.columns[:9]) == ["variant", "representation", "subwindows", "width", "height",
                                       "accumulation_us", "palette", "tau_us", "bins"]
    assert list(table.columns[9:]) == SUMMARY_COLUMNS
    assert list(table["variant"]) == ["periodic", "voxel"]  # in the order given
    periodic, voxel = (table.iloc[i] for i in range(2))

    assert (periodic["representation"], periodic["palette"], periodic["bins"]) == ("periodic_frame", "dark", "")
    assert (voxel["representation"], voxel["palette"], voxel["bins"]) == ("voxel_grid", "", "5")
    assert periodic["experiment"] == voxel["experiment"] == "resnet18_lstm_events"
    assert (periodic["n_seeds"], periodic["seeds"], periodic["n_test_recordings"]) == (2, "0;1", 4)
    assert (voxel["n_seeds"], voxel["n_test_recordings"]) == (1, 4)
    for k in (1, 3, 5):  # a miss ranks last, so every k scores the same recordings
        assert float(periodic[f"top{k}_pct_mean"]) == pytest.approx(75.0)
        assert float(periodic[f"top{k}_pct_std"]) == pytest.approx(np.std([100.0, 50.0], ddof=1), abs=1e-4)
        low, high = bootstrap_interval(np.array([1.0, 1.0, 0.5, 0.5]))  # hits averaged over the two seeds
        assert (float(periodic[f"top{k}_pct_ci95_low"]), float(periodic[f"top{k}_pct_ci95_high"])) == (
            pytest.approx(low, abs=1e-4), pytest.approx(high, abs=1e-4))
        assert float(voxel[f"top{k}_pct_mean"]) == pytest.approx(25.0)
        assert voxel[f"top{k}_pct_std"] == ""  # one seed
        # four AUs present: a uniform guess hits 1, 3 or 4 of them
        assert float(periodic[f"chance_top{k}_pct"]) == pytest.approx(100.0 * min(k, 4) / 4)
    # the paper's number only beside the paper's frames
    for k, value in zip((1, 3, 5), PAPER_RESULTS[("resnet18_lstm", "events", False)]):
        assert float(periodic[f"paper_top{k}_pct"]) == pytest.approx(value)
        assert voxel[f"paper_top{k}_pct"] == ""
    assert (float(periodic["top_prediction_share_pct"]), periodic["one_class_flag"]) == (25.0, "no")
    assert (float(voxel["top_prediction_share_pct"]), voxel["one_class_flag"]) == (100.0, "yes")
    assert voxel["runs"] == str(tmp_path / "voxel" / "seed-0") and periodic["data_source"] == "synthetic"


def test_bad_representation_arguments_are_refused(tmp_path, capsys):
    assert main(["evaluate", "--representation-runs", str(tmp_path), "--out-dir", str(tmp_path)]) == 2
    assert "VARIANT=RUN_DIR" in capsys.readouterr().err
    write_run(tmp_path / "a", 0, [0, 1], [0, 1])
    assert main(["evaluate", "--representation-runs", f"a={tmp_path / 'a'}", "--representation-variants",
                 json.dumps({"b": {"representation": "tbr"}}), "--out-dir", str(tmp_path)]) == 2
    assert "variants without runs: ['b']" in capsys.readouterr().err
    assert not (tmp_path / "table6_representations.csv").exists()


# ---------------------------------------------------------------------------------------------------------
def run_snakemake(workdir: Path, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
    return subprocess.run([sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory",
                           str(workdir), *args], capture_output=True, text=True, env=env, timeout=timeout)


@pytest.mark.parametrize("change, key", [
    ({"variants": {"coarse": {"representation": "voxel_grid", "bins": 1}}}, "representations.variants.coarse"),
    ({"variants": {"x": {"representation": "surface"}}}, "['representations']['variants']['x']['representation']"),
    ({"experiment": "resnet18_lstm_rgb"}, "representations.experiment"),
])
def test_bad_study_values_stop_at_parse_time_naming_the_key(tmp_path, change, key):
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config["representations"].update(change)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    proc = run_snakemake(tmp_path, "-n", "all")
    assert proc.returncode != 0 and key in proc.stdout + proc.stderr, proc.stdout[-2000:] + proc.stderr[-2000:]


def test_a_study_experiment_missing_stops_the_study_only(tmp_path):
    """The study itself stops, naming the key, when its experiment is not in `experiments`; the rest of the
    workflow does not (the tiny pipeline's config has no resnet18_lstm_events and runs `all`)."""
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config["representations"]["experiment"] = "no_such_experiment"
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    proc = run_snakemake(tmp_path, "-n", "representations")
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "representations.experiment" in text and "no_such_experiment" in text, text[-2000:]


def link_or_copy(source, destination):
    """Hard links for the tiny run's data (instant, same modification times; Snakemake replaces an output
    file, never writes into it, so the shared run is not changed), a copy where links are not possible."""
    try:
        os.link(source, destination)
    except OSError:
        shutil.copy2(source, destination)


def job_counts(output: str) -> dict[str, int]:
    """rule -> planned jobs, from the `Job stats:` table of a Snakemake run or dry run."""
    if "Job stats:" not in output:
        return {}
    table = output.split("Job stats:", 1)[1].split("\ntotal", 1)[0]
    return {rule: int(n) for rule, n in re.findall(r"^(\w+)\s+(\d+)\s*$", table, flags=re.M)}


def test_the_study_on_the_tiny_pipeline(tiny_pipeline, tmp_path):
    """Two variants, one seed, on top of a complete tiny run: only the study's jobs run, the periodic variant
    reuses the events stage's frames, the table has one row per variant with finite accuracies, and a changed
    value reruns only the study's jobs that read it."""
    project = tmp_path / "project"
    project.mkdir()
    for entry in tiny_pipeline.iterdir():
        if entry.name in ("results", "resources"):
            shutil.copytree(entry, project / entry.name, symlinks=True, copy_function=link_or_copy)
        elif entry.is_dir():
            shutil.copytree(entry, project / entry.name, symlinks=True)  # copy2 keeps the modification times
        else:
            shutil.copy2(entry, project / entry.name)
    config = yaml.safe_load((project / "config.yaml").read_text())
    config["representations"] = {"experiment": "lstm_events", "seeds": [0], "variants": {
        "periodic_33ms": {"representation": "periodic_frame"}, "voxel_grid": {"representation": "voxel_grid"}}}
    (project / "config.yaml").write_text(yaml.safe_dump(config))

    def snakemake(*args):
        proc = subprocess.run([sys.executable, "-m", "snakemake", "-c2", *args], capture_output=True, text=True,
                              timeout=900, cwd=project)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
        return proc.stdout + proc.stderr

    ran = job_counts(snakemake("representations"))
    assert ran == {"representation_events": 2, "representation_shards": 2, "representation_features": 2,
                   "representation_train": 2, "representation_table": 1, "representations": 1}, ran
    results = project / "results"
    assert not (results / "representations" / "periodic_33ms" / "events").exists()  # results/events reused
    table = pd.read_csv(results / "tables" / "table6_representations.csv")
    assert list(table["variant"]) == ["periodic_33ms", "voxel_grid"]
    assert list(table["representation"]) == ["periodic_frame", "voxel_grid"]
    assert np.isfinite(table["top1_pct_mean"]).all() and (table["n_test_recordings"] > 0).all()
    assert (table["experiment"] == "lstm_events").all() and (table["n_seeds"] == 1).all()

    assert job_counts(snakemake("-n", "representations")) == {}
    # voxel_grid draws with events.bins (periodic frames do not): its chain alone reruns
    (tmp_path / "change.yaml").write_text(yaml.safe_dump({"events": {"bins": 3}}))
    planned = job_counts(snakemake("-n", "--nolock", "representations", "--configfile", str(project / "config.yaml"),
                                   str(tmp_path / "change.yaml")))
    assert planned == {"representation_events": 2, "representation_shards": 1, "representation_features": 1,
                       "representation_train": 1, "representation_table": 1, "representations": 1}, planned
