"""``evaluate_runs``: the tables, the per-run listings and the confusion figures in one call."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
import pandas as pd

from .. import ACTION_UNITS
from ..errors import FacemorphicError
from ..fileio import write_csv_atomic
from ..metrics import TOPK, topk_hits
from .figures import confusion_matrix, save_confusion_figure
from .tables import LOGIT_COLUMNS, build_tables, lambda_sweep_table, load_runs

log = logging.getLogger(__name__)


def find_runs(runs_dir: str | Path) -> list[Path]:
    """Every run folder (one holding run.json) under ``runs_dir``, sorted."""
    return sorted(p.parent for p in Path(runs_dir).rglob("run.json"))


def per_run_predictions(runs: pd.DataFrame, predictions: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Every run's scored recordings in one table (experiment, seed, run folder, label, prediction, hits)."""
    frames = []
    for run in runs.itertuples():
        frame = predictions[run.run]
        logits, labels = frame[LOGIT_COLUMNS].to_numpy(float), frame["label"].to_numpy(int)
        out = pd.DataFrame({"experiment": run.experiment, "seed": run.seed, "run": run.run,
                            "recording_id": frame["recording_id"], "user": frame["user"],
                            "au": [ACTION_UNITS[i] for i in labels],
                            "predicted_au": [ACTION_UNITS[i] for i in logits.argmax(axis=1)]})
        for k in TOPK:
            out[f"top{k}_hit"] = topk_hits(logits, labels, k).astype(int)
        frames.append(out)
    return pd.concat(frames, ignore_index=True)


def sweep_table(sweep_run_dirs) -> pd.DataFrame:
    """The L_alpha sweep table from the sweep runs' validation predictions."""
    sweep_run_dirs = list(sweep_run_dirs)
    sweep_runs, sweep_predictions = load_runs(sweep_run_dirs, "val")
    if sweep_runs.empty:
        raise FacemorphicError(f"no run with val predictions among the {len(sweep_run_dirs)} sweep run folders")
    return lambda_sweep_table(sweep_runs, sweep_predictions)


def write_sweep_table(sweep_run_dirs, tables_dir: str | Path) -> pd.DataFrame:
    """Write ``{tables_dir}/table_lambda_sweep.csv`` alone (the workflow needs it before the final runs)."""
    table = sweep_table(sweep_run_dirs)
    write_csv_atomic(table, Path(tables_dir) / "table_lambda_sweep.csv", float_format="%.4f")
    return table


def evaluate_runs(run_dirs, tables_dir: str | Path, figures_dir: str | Path | None = None,
                  split: str = "test", data_source: str = "unstated", sweep_run_dirs=()) -> dict:
    """Write ``{tables_dir}/table{2..5}_*.csv``, ``runs.csv`` (per-run scores) and ``predictions.csv`` (every
    run's scored recordings), and the ``confusion_{experiment}.png`` figures; with ``sweep_run_dirs``, also
    ``table_lambda_sweep.csv`` from those runs' validation predictions (validation recordings carved from the
    training split).

    The files depend only on the runs' contents: rows are sorted, the bootstrap is seeded, floats are
    written with four decimals, so the same runs give byte-identical tables whatever their order.
    """
    run_dirs = list(run_dirs)
    runs, predictions = load_runs(run_dirs, split)
    if runs.empty:
        raise FacemorphicError(f"no run with {split} predictions among {len(run_dirs)} run folders")
    tables = build_tables(runs, predictions, data_source)
    tables["predictions"] = per_run_predictions(runs.sort_values(["experiment", "seed", "run"]), predictions)
    sweep_run_dirs = list(sweep_run_dirs)
    if sweep_run_dirs:
        tables["table_lambda_sweep"] = sweep_table(sweep_run_dirs)
    for name, table in tables.items():
        write_csv_atomic(table, Path(tables_dir) / f"{name}.csv", float_format="%.4f")
    if figures_dir is not None:
        for experiment, group in runs.groupby("experiment"):
            frames = [predictions[run] for run in group["run"]]
            labels = np.concatenate([f["label"].to_numpy(int) for f in frames])
            predicted = np.concatenate([f[LOGIT_COLUMNS].to_numpy(float).argmax(axis=1) for f in frames])
            title = f"{experiment} ({split}, {len(frames)} seed(s), {len(labels)} predictions)"
            safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", experiment)
            save_confusion_figure(confusion_matrix(labels, predicted), title,
                                  Path(figures_dir) / f"confusion_{safe}.png")
    log.info("tables from %d runs written to %s", len(runs), tables_dir)
    return tables
