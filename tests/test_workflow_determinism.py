"""Runs that repeat: the same config and seeds give the same tables whatever `-c` is.

The session's tiny run (tests/conftest.py, `-c2`: two jobs at a time) is copied, and its feature cache, L_alpha
sweep and training runs of two experiments (a coefficient model, and a swept ResNet-18 model on the feature
cache) are run again with `-c1` (one job at a time, in another order). Each table row depends only on its
own experiment's runs, so those rows must come out byte-identical.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import yaml

KEPT_EXPERIMENTS = ("coeff_lstm", "lstm_events_alpha")


def test_tables_do_not_depend_on_the_cores_given(tiny_pipeline, tmp_path):
    project = tmp_path / "project"
    shutil.copytree(tiny_pipeline, project, symlinks=True)
    config = yaml.safe_load((project / "config.yaml").read_text())
    config["experiments"] = {name: config["experiments"][name] for name in KEPT_EXPERIMENTS}
    config["predict"]["experiment"] = KEPT_EXPERIMENTS[-1]  # must name a kept experiment (nothing is predicted)
    (project / "config.yaml").write_text(yaml.safe_dump(config))
    for folder in ("results/runs", "results/sweep", "results/features", "results/tables"):
        shutil.rmtree(project / folder)
    proc = subprocess.run([sys.executable, "-m", "snakemake", "-c1", "results/tables/table2_coefficients.csv"],
                          capture_output=True, text=True, timeout=900, cwd=project)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    compared = 0
    for table in sorted((tiny_pipeline / "results" / "tables").glob("*.csv")):
        again_path = project / "results" / "tables" / table.name
        assert again_path.is_file(), f"{table.name} was not written again"
        first, again = pd.read_csv(table, dtype=str), pd.read_csv(again_path, dtype=str)
        if "experiment" not in first.columns:
            continue
        first = first[first["experiment"].isin(KEPT_EXPERIMENTS)].reset_index(drop=True)
        again = again[again["experiment"].isin(KEPT_EXPERIMENTS)].reset_index(drop=True)
        pd.testing.assert_frame_equal(first, again, check_exact=True, obj=table.name)
        compared += len(first)
    assert compared >= 3  # table 2's coefficient row, the sweep's rows, tables 4-5's swept row
    for experiment in KEPT_EXPERIMENTS:
        for seed_dir in sorted((tiny_pipeline / "results" / "runs" / experiment).glob("seed-*")):
            again = project / "results" / "runs" / experiment / seed_dir.name / "predictions.csv"
            assert again.read_bytes() == (seed_dir / "predictions.csv").read_bytes(), again
