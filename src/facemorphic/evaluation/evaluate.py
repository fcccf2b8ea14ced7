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
from .figures import confusion_matrix, save_confusion_figure
from .tables import LOGIT_COLUMNS, TOPK, build_tables, load_runs, topk_hits

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
            out[f"top{k}"] = topk_hits(logits, labels, k).astype(int)
        frames.append(out)
    return pd.concat(frames, ignore_index=True)


def evaluate_runs(run_dirs, tables_dir: str | Path, figures_dir: str | Path | None = None,
                  split: str = "test") -> dict:
    """Write ``{tables_dir}/table{2..5}_*.csv``, ``runs.csv`` (per-run scores) and ``predictions.csv`` (every
    run's scored recordings), and the ``confusion_{experiment}.png`` figures."""
    runs, predictions = load_runs(run_dirs, split)
    if runs.empty:
        raise FacemorphicError(f"no run with {split} predictions among {len(list(run_dirs))} run folders")
    tables = build_tables(runs, predictions)
    tables["predictions"] = per_run_predictions(runs, predictions)
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
