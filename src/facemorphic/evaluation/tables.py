"""The paper's result tables, recomputed from the runs' predictions.

Every number comes from a run folder's ``predictions.csv`` (the per-recording logits of the evaluation
split); ``run.json`` says which experiment, model, modality, coefficient-loss weight and seed produced it.
Top-k accuracy is recomputed here from the logits (a recording is a top-k hit when fewer than k classes
score strictly higher than its true class), in percent, then averaged over seeds per experiment:
``_mean`` and ``_std`` (sample standard deviation, empty with a single seed). Each row lists its run
folders in ``runs``, and ``runs.csv`` lists every run's own scores.

Which table a run belongs to follows from what it is, not from a tag: coefficient models -> Table 2;
frame models without L_alpha -> Table 3 (events and RGB); frame models on events with L_alpha -> Table 4
(per AU); frame models on events, with and without L_alpha -> Table 5. The paper's numbers sit in
``paper_top1/3/5`` beside the recomputed ones.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from .. import ACTION_UNITS
from ..errors import InputFileError

log = logging.getLogger(__name__)

LOGIT_COLUMNS = [f"logit_{i:02d}" for i in range(len(ACTION_UNITS))]
TOPK = (1, 3, 5)
FRAME_MODELS = ("resnet18_lstm", "resnet18_transformer", "i3d")
COEFFICIENT_MODELS = ("coeff_transformer", "coeff_lstm")
MODEL_ORDER = {name: i for i, name in enumerate(COEFFICIENT_MODELS + FRAME_MODELS)}

#: (model, modality, with L_alpha) -> the paper's top-1/3/5 accuracy in percent (Becattini et al. 2024).
PAPER_RESULTS = {
    ("coeff_transformer", "coefficients", False): (69.27, 82.76, 87.11),
    ("coeff_lstm", "coefficients", False): (50.34, 82.36, 86.66),
    ("resnet18_lstm", "events", False): (46.23, 62.91, 68.58),
    ("resnet18_transformer", "events", False): (31.74, 40.63, 52.08),
    ("i3d", "events", False): (47.08, 69.58, 80.66),
    ("resnet18_lstm", "rgb", False): (25.65, 38.86, 46.12),
    ("resnet18_transformer", "rgb", False): (4.16, 12.50, 20.83),
    ("i3d", "rgb", False): (29.86, 72.00, 82.05),
    ("resnet18_lstm", "events", True): (50.21, 70.71, 81.17),
    ("resnet18_transformer", "events", True): (43.35, 65.59, 80.05),
    ("i3d", "events", True): (49.58, 71.08, 79.41),
}


def topk_hits(logits: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """Boolean per row: fewer than k classes have a logit strictly above the true class's."""
    true = logits[np.arange(len(labels)), labels]
    return (logits > true[:, None]).sum(axis=1) < k


def load_runs(run_dirs, split: str = "test") -> tuple[pd.DataFrame, dict[str, pd.DataFrame]]:
    """Each run's description and scores (one row per run), and its predictions on ``split``."""
    rows, predictions = [], {}
    for run_dir in run_dirs:
        run_dir = Path(run_dir)
        if run_dir.name == "run.json":
            run_dir = run_dir.parent
        info_path, pred_path = run_dir / "run.json", run_dir / "predictions.csv"
        for path in (info_path, pred_path):
            if not path.is_file():
                raise InputFileError(path, "missing from the run folder")
        info = json.loads(info_path.read_text())
        frame = pd.read_csv(pred_path, dtype={"recording_id": str, "user": str})
        missing = {"split", "label", *LOGIT_COLUMNS} - set(frame.columns)
        if missing:
            raise InputFileError(pred_path, f"missing columns {sorted(missing)}")
        frame = frame[frame["split"] == split].reset_index(drop=True)
        if frame.empty:
            log.warning("%s has no %s predictions; the run is left out of the tables", pred_path, split)
            continue
        logits, labels = frame[LOGIT_COLUMNS].to_numpy(float), frame["label"].to_numpy(int)
        row = {"run": str(run_dir), "experiment": info.get("experiment") or run_dir.parent.name,
               "model": info["model"], "modality": info["modality"],
               "lambda_alpha": float(info.get("lambda_alpha", 0.0)), "seed": int(info.get("seed", 0)),
               "n": len(frame)}
        for k in TOPK:
            row[f"top{k}"] = 100.0 * topk_hits(logits, labels, k).mean()
        rows.append(row)
        predictions[str(run_dir)] = frame
    runs = pd.DataFrame(rows, columns=["run", "experiment", "model", "modality", "lambda_alpha", "seed", "n",
                                       "top1", "top3", "top5"])
    return runs, predictions


def _paper(model: str, modality: str, lambda_alpha: float) -> tuple[float, float, float]:
    return PAPER_RESULTS.get((model, modality, lambda_alpha > 0), (np.nan, np.nan, np.nan))


def summarise(runs: pd.DataFrame, extra_keys=()) -> pd.DataFrame:
    """Mean and std over seeds of each experiment (and ``extra_keys``), with the paper's numbers."""
    keys = ["experiment", "model", "modality", "lambda_alpha", *extra_keys]
    out = []
    for key, group in runs.groupby(keys, sort=False):
        row = dict(zip(keys, key))
        row["l_alpha"] = "yes" if row["lambda_alpha"] > 0 else "no"
        row["n_seeds"] = group["seed"].nunique()
        row["seeds"] = ";".join(str(s) for s in sorted(group["seed"]))
        row["n_test"] = int(group["n"].iloc[0])
        for k in TOPK:
            row[f"top{k}_mean"] = group[f"top{k}"].mean()
            row[f"top{k}_std"] = group[f"top{k}"].std(ddof=1) if len(group) > 1 else np.nan
        for k, value in zip(TOPK, _paper(row["model"], row["modality"], row["lambda_alpha"])):
            row[f"paper_top{k}"] = value
        row["runs"] = ";".join(sorted(group["run"]))
        out.append(row)
    columns = [*keys, "l_alpha", "n_seeds", "seeds", "n_test", *[f"top{k}_{s}" for k in TOPK for s in ("mean", "std")],
               *[f"paper_top{k}" for k in TOPK], "runs"]
    table = pd.DataFrame(out, columns=columns)
    order = table["model"].map(MODEL_ORDER).fillna(99)
    return table.assign(_order=order).sort_values(["_order", "modality", "lambda_alpha", "experiment"],
                                                  kind="stable").drop(columns="_order").reset_index(drop=True)


def per_au_runs(runs: pd.DataFrame, predictions: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """One row per run and AU: top-k accuracy over that AU's test recordings."""
    rows = []
    for run in runs.itertuples():
        frame = predictions[run.run]
        logits, labels = frame[LOGIT_COLUMNS].to_numpy(float), frame["label"].to_numpy(int)
        hits = {k: topk_hits(logits, labels, k) for k in TOPK}
        for label in sorted(set(labels)):
            mask = labels == label
            row = {"run": run.run, "experiment": run.experiment, "model": run.model, "modality": run.modality,
                   "lambda_alpha": run.lambda_alpha, "seed": run.seed, "au": ACTION_UNITS[label], "n": int(mask.sum())}
            row.update({f"top{k}": 100.0 * hits[k][mask].mean() for k in TOPK})
            rows.append(row)
    return pd.DataFrame(rows, columns=["run", "experiment", "model", "modality", "lambda_alpha", "seed", "au", "n",
                                       "top1", "top3", "top5"])


def build_tables(runs: pd.DataFrame, predictions: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """The four tables (and the per-run listing) as DataFrames, keyed by their file stem."""
    is_frame = runs["model"].isin(FRAME_MODELS)
    events = runs["modality"] == "events"
    with_alpha = runs["lambda_alpha"] > 0
    table4_runs = runs[is_frame & events & with_alpha]
    per_au = summarise(per_au_runs(table4_runs, predictions), extra_keys=("au",))
    per_au = per_au.drop(columns=[f"paper_top{k}" for k in TOPK])
    overall = summarise(table4_runs).assign(au="all")
    keys = ["experiment", "model", "modality", "lambda_alpha", "au"]
    table4 = pd.concat([overall, per_au], ignore_index=True)
    table4 = table4[keys + [c for c in overall.columns if c not in keys]]
    au_order = table4["au"].map(lambda au: -1 if au == "all" else int(au))
    model_order = table4["model"].map(MODEL_ORDER)
    table4 = (table4.assign(_m=model_order, _a=au_order).sort_values(["_m", "experiment", "_a"], kind="stable")
              .drop(columns=["_m", "_a"]).reset_index(drop=True))
    return {
        "runs": runs.sort_values(["experiment", "seed"]).reset_index(drop=True),
        "table2_coefficients": summarise(runs[runs["model"].isin(COEFFICIENT_MODELS)]),
        "table3_event_vs_rgb": summarise(runs[is_frame & ~with_alpha & runs["modality"].isin(["events", "rgb"])]),
        "table4_per_au": table4,
        "table5_alpha_ablation": summarise(runs[is_frame & events]),
    }
