"""The paper's result tables, recomputed from the runs' predictions, with the caveats each number needs.

Every number comes from a run folder's ``predictions.csv`` (the per-recording logits of the evaluation
split, one column per AU: ``logit_AU1`` ... ``logit_AU56``); ``run.json`` says which experiment, model,
modality, coefficient-loss weight, seed, backbone weights and training protocol produced it. Top-k accuracy
is recomputed here with :func:`facemorphic.metrics.topk_hits`, the project's one top-k (a recording is a
hit when fewer than k other classes score at least as high as its true class; a non-finite row is a miss,
counted in ``runs.csv``'s ``nonfinite``). Units are in the column names (``_pct``: percent).

Each table row gives, per experiment:

- ``top{k}_pct_mean`` / ``_std``: mean and sample standard deviation over seeds (std empty with one seed);
- ``top{k}_pct_ci95_low`` / ``_high``: a 95 % percentile-bootstrap interval over **test recordings**: each
  recording's hit is averaged over the seeds, and the recordings are resampled with replacement
  (:data:`BOOTSTRAP_RESAMPLES` resamples, generator seed :data:`BOOTSTRAP_SEED`, the same for every row,
  so a row never depends on the others); the interval is on the seed-mean accuracy, and says how much the
  number would move with another draw of test recordings of the same kind (``ci_method`` states it);
- ``n_test_recordings`` and ``n_seeds``; ``chance_top{k}_pct``: a uniform guess among the C AUs present in
  the evaluated recordings, ``100 * min(k, C) / C``;
- ``top_prediction_share_pct``: the largest share of the test clips that one run gives to a single class
  (the maximum over seeds), and ``one_class_flag`` = ``yes`` when it exceeds 50 % and exceeds the share of
  the most frequent true class (a collapsed model, whose accuracy is the class balance, not skill);
- ``data_source`` (given to :func:`build_tables`), ``backbone_weights`` and ``protocol`` (maximum epochs and
  how the checkpoint was chosen, from ``run.json``);
- ``alpha_r2_mean`` / ``_std``: for runs with L_alpha, the R^2 of the predicted against the RGB-fitted
  3DMM coefficients on the evaluated frames, in original units (``run.json``'s ``{split}_alpha_r2``). An
  R^2 against the synthetic ground truth is not given: the truth coefficients live in the generator's basis,
  not in the learned 3DMM's, and no run reads them.

Which table a run belongs to follows from what it is, not from a tag: coefficient models -> Table 2; frame
models without L_alpha -> Table 3 (events and RGB, face-cropped RGB beside RGB; a ``crop`` column says
which); frame models on events with L_alpha -> Table 4 (per AU, with the paper's per-AU top-1 beside ours);
frame models on events, with and without L_alpha -> Table 5.
The paper's numbers sit in ``paper_top{k}_pct``. The L_alpha sweep (:func:`lambda_sweep_table`) is scored
on the validation recordings carved from the training split, never on the test split.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from .. import ACTION_UNITS
from ..errors import InputFileError
from ..metrics import TOPK, nonfinite_rows, topk_hits

log = logging.getLogger(__name__)

LOGIT_COLUMNS = [f"logit_AU{au}" for au in ACTION_UNITS]
FRAME_MODELS = ("resnet18_lstm", "resnet18_transformer", "i3d")
COEFFICIENT_MODELS = ("coeff_transformer", "coeff_lstm")
MODEL_ORDER = {name: i for i, name in enumerate(COEFFICIENT_MODELS + FRAME_MODELS)}
BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 0
CI_METHOD = (f"95% percentile bootstrap over test recordings ({BOOTSTRAP_RESAMPLES} resamples, seed "
             f"{BOOTSTRAP_SEED}), each recording's hit averaged over seeds")
#: share of the test clips given to one class above which a model is flagged as predicting one class
ONE_CLASS_SHARE_PCT = 50.0

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

#: Table 3's ``crop`` column: what a modality's frames went through before the network. ``events`` and ``rgb``
#: keep the full view through ``shards.crop`` (``center``, the default: the central square; ``full``: the whole
#: frame); ``rgb_face`` is cropped to the smoothed landmark face box (facemorphic.shards.face). PAPER_RESULTS
#: is keyed by modality, so the paper's RGB numbers sit beside the ``rgb`` rows only: the paper describes no
#: face crop for its RGB models, and the ``rgb_face`` rows (a setting it did not report) have none.
TABLE3_CROPS = {"events": "full view (shards.crop)", "rgb": "full view (shards.crop)", "rgb_face": "face"}

#: model -> the paper's Table 4: top-1 accuracy in percent per AU, in the order of ACTION_UNITS.
PAPER_TABLE4_TOP1 = {
    "resnet18_lstm": (40.9, 30.8, 53.0, 34.8, 45.6, 18.3, 29.6, 6.1, 42.9, 17.6, 34.5, 0.0, 23.4, 36.4, 39.6, 65.5,
                      57.1, 73.6, 94.0, 85.1, 92.3, 100.0, 87.3, 98.6),
    "resnet18_transformer": (20.3, 53.4, 46.5, 28.8, 46.3, 43.3, 10.8, 1.0, 26.2, 13.2, 28.1, 30.5, 4.4, 38.0, 11.0,
                             47.5, 36.9, 32.3, 90.8, 66.5, 100.0, 84.0, 80.7, 100.0),
    "i3d": (29.6, 45.1, 40.1, 40.0, 50.7, 13.4, 62.7, 60.2, 43.3, 1.7, 41.4, 36.0, 4.2, 37.2, 65.6, 70.9, 39.1, 62.6,
            57.3, 84.4, 63.9, 90.2, 75.8, 77.1),
}

RUN_COLUMNS = ["run", "experiment", "model", "modality", "lambda_alpha", "seed", "n", "nonfinite",
               *[f"top{k}_pct" for k in TOPK], "top_prediction_share_pct", "alpha_r2", "epochs", "epochs_run", "patience",
               "val_fraction", "backbone_weights"]


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
        missing = {"recording_id", "split", "label", *LOGIT_COLUMNS} - set(frame.columns)
        if missing:
            raise InputFileError(pred_path, f"missing columns {sorted(missing)}")
        frame = frame[frame["split"] == split].reset_index(drop=True)
        if frame.empty:
            log.warning("%s has no %s predictions; the run is left out of the tables", pred_path, split)
            continue
        logits, labels = frame[LOGIT_COLUMNS].to_numpy(float), frame["label"].to_numpy(int)
        predicted_counts = np.bincount(logits.argmax(axis=1), minlength=len(ACTION_UNITS))
        row = {"run": str(run_dir), "experiment": info.get("experiment") or run_dir.parent.name,
               "model": info["model"], "modality": info["modality"],
               "lambda_alpha": float(info.get("lambda_alpha", 0.0)), "seed": int(info.get("seed", 0)),
               "n": len(frame), "nonfinite": int(nonfinite_rows(logits).sum()),
               "top_prediction_share_pct": 100.0 * predicted_counts.max() / len(frame),
               "alpha_r2": _alpha_r2(info, split),
               "epochs": info.get("epochs"), "epochs_run": info.get("epochs_run"),
               "patience": int(info.get("patience", 0)),
               "val_fraction": float(info.get("val_fraction", 0.0)),
               "backbone_weights": str(info.get("backbone_weights", "unrecorded"))}
        if row["nonfinite"]:
            log.warning("%s: %d of %d %s recordings have non-finite logits (scored as misses)", pred_path,
                        row["nonfinite"], len(frame), split)
        for k in TOPK:
            row[f"top{k}_pct"] = 100.0 * topk_hits(logits, labels, k).mean()
        rows.append(row)
        predictions[str(run_dir)] = frame
    runs = pd.DataFrame(rows, columns=RUN_COLUMNS)
    return runs, predictions


def _alpha_r2(info: dict, split: str) -> float:
    """The run's coefficient R^2 on ``split``; NaN without L_alpha (an untrained regression head's R^2 says
    nothing) or when the run recorded none."""
    value = info.get(f"{split}_alpha_r2")
    return float(value) if value is not None and float(info.get("lambda_alpha", 0.0)) > 0 else np.nan


def bootstrap_interval(hits_per_recording: np.ndarray, resamples: int = BOOTSTRAP_RESAMPLES,
                       seed: int = BOOTSTRAP_SEED) -> tuple[float, float]:
    """95 % percentile-bootstrap interval (percent) of the mean of per-recording hit rates in [0, 1]."""
    values = np.asarray(hits_per_recording, dtype=np.float64)
    if not len(values):
        return np.nan, np.nan
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), size=(resamples, len(values)))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return 100.0 * float(low), 100.0 * float(high)


def protocol_of(runs: pd.DataFrame) -> str:
    """How an experiment's runs were trained: maximum epochs, early stopping, how the checkpoint was chosen."""
    parts = []
    for (epochs, val_fraction, patience), group in runs.groupby(["epochs", "val_fraction", "patience"],
                                                                dropna=False, sort=True):
        choice = (f"checkpoint of the best val top-1 (val: {val_fraction:g} of the train recordings)"
                  if val_fraction > 0 else "last epoch (no validation split)")
        stopping = (f", early stopping after {patience} epochs without val improvement (ran "
                    f"{int(group['epochs_run'].min())}-{int(group['epochs_run'].max())})"
                    if patience and val_fraction > 0 else "")
        parts.append(f"max {epochs} epochs{stopping}, {choice}")
    return "; ".join(parts)


def _pooled_hits(frames: list[pd.DataFrame], k: int) -> np.ndarray:
    """Each recording's top-k hit averaged over the seeds that scored it, in recording-id order."""
    per_run = [pd.Series(topk_hits(f[LOGIT_COLUMNS].to_numpy(float), f["label"].to_numpy(int), k).astype(float),
                         index=f["recording_id"].to_numpy()) for f in frames]
    return pd.concat(per_run).groupby(level=0).mean().sort_index().to_numpy()


def summarise_rows(runs: pd.DataFrame, predictions: dict[str, pd.DataFrame], data_source: str,
                   au: int | None = None) -> pd.DataFrame:
    """One row per experiment over its seeds (all recordings, or only those of ``au``), with its caveats."""
    keys = ["experiment", "model", "modality", "lambda_alpha"]
    out = []
    for key, group in runs.groupby(keys, sort=True):
        frames = [predictions[run] for run in group["run"]]
        if au is not None:
            frames = [f[f["label"] == ACTION_UNITS.index(au)] for f in frames]
        if not sum(len(f) for f in frames):
            continue
        row = dict(zip(keys, key))
        row["au"] = "all" if au is None else str(au)
        row["l_alpha"] = "yes" if row["lambda_alpha"] > 0 else "no"
        row["data_source"] = data_source
        row["backbone_weights"] = ";".join(sorted(set(group["backbone_weights"])))
        row["protocol"] = protocol_of(group)
        row["n_seeds"] = group["seed"].nunique()
        row["seeds"] = ";".join(str(s) for s in sorted(group["seed"]))
        recordings = pd.concat([f[["recording_id", "label"]] for f in frames]).drop_duplicates("recording_id")
        row["n_test_recordings"] = len(recordings)
        all_labels = pd.concat([predictions[run]["label"] for run in group["run"]])
        n_present = all_labels.nunique()
        for k in TOPK:
            per_seed = pd.Series([100.0 * topk_hits(f[LOGIT_COLUMNS].to_numpy(float), f["label"].to_numpy(int),
                                                    k).mean() for f in frames if len(f)])
            row[f"top{k}_pct_mean"] = per_seed.mean()
            row[f"top{k}_pct_std"] = per_seed.std(ddof=1) if len(per_seed) > 1 else np.nan
            row[f"top{k}_pct_ci95_low"], row[f"top{k}_pct_ci95_high"] = bootstrap_interval(
                _pooled_hits([f for f in frames if len(f)], k))
            row[f"chance_top{k}_pct"] = 100.0 * min(k, n_present) / n_present
        paper = PAPER_RESULTS.get((row["model"], row["modality"], row["lambda_alpha"] > 0), (np.nan,) * len(TOPK))
        if au is not None:
            per_au = PAPER_TABLE4_TOP1.get(row["model"]) if row["modality"] == "events" else None
            paper = (per_au[ACTION_UNITS.index(au)] if per_au else np.nan, np.nan, np.nan)
        for k, value in zip(TOPK, paper):
            row[f"paper_top{k}_pct"] = value
        if au is None:
            share = float(group["top_prediction_share_pct"].max())
            majority_true = 100.0 * all_labels.value_counts().max() / len(all_labels)
            row["top_prediction_share_pct"] = share
            row["one_class_flag"] = "yes" if share > max(ONE_CLASS_SHARE_PCT, majority_true) else "no"
        else:
            row["top_prediction_share_pct"], row["one_class_flag"] = np.nan, ""
        r2 = group["alpha_r2"].dropna()
        row["alpha_r2_mean"] = r2.mean() if len(r2) else np.nan
        row["alpha_r2_std"] = r2.std(ddof=1) if len(r2) > 1 else np.nan
        row["ci_method"] = CI_METHOD
        row["runs"] = ";".join(sorted(group["run"]))
        out.append(row)
    return pd.DataFrame(out, columns=SUMMARY_COLUMNS)


SUMMARY_COLUMNS = [
    "experiment", "model", "modality", "lambda_alpha", "au", "l_alpha", "data_source", "backbone_weights",
    "protocol", "n_seeds", "seeds", "n_test_recordings",
    *[f"top{k}_pct_{s}" for k in TOPK for s in ("mean", "std", "ci95_low", "ci95_high")],
    *[f"chance_top{k}_pct" for k in TOPK], *[f"paper_top{k}_pct" for k in TOPK],
    "top_prediction_share_pct", "one_class_flag", "alpha_r2_mean", "alpha_r2_std", "ci_method", "runs",
]


def _ordered(table: pd.DataFrame) -> pd.DataFrame:
    """Rows in model order (coefficient models first), then modality, lambda, experiment, AU order."""
    if table.empty:
        return table.reset_index(drop=True)
    order = table.assign(_m=table["model"].map(MODEL_ORDER).fillna(99),
                         _a=table["au"].map(lambda au: -1 if au == "all" else ACTION_UNITS.index(int(au))))
    return (order.sort_values(["_m", "modality", "lambda_alpha", "experiment", "_a"], kind="stable")
            .drop(columns=["_m", "_a"]).reset_index(drop=True))


def build_tables(runs: pd.DataFrame, predictions: dict[str, pd.DataFrame],
                 data_source: str = "unstated") -> dict[str, pd.DataFrame]:
    """The four tables (and the per-run listing) as DataFrames, keyed by their file stem."""
    is_frame = runs["model"].isin(FRAME_MODELS)
    events = runs["modality"] == "events"
    with_alpha = runs["lambda_alpha"] > 0
    table4_runs = runs[is_frame & events & with_alpha]
    table4_parts = [summarise_rows(table4_runs, predictions, data_source)]
    table4_parts += [summarise_rows(table4_runs, predictions, data_source, au=au) for au in ACTION_UNITS]
    table4 = pd.concat([p for p in table4_parts if not p.empty] or [table4_parts[0]], ignore_index=True)

    def summary(selected):
        return _ordered(summarise_rows(runs[selected], predictions, data_source))

    table3 = summary(is_frame & ~with_alpha & runs["modality"].isin(list(TABLE3_CROPS)))
    table3.insert(table3.columns.get_loc("modality") + 1, "crop", table3["modality"].map(TABLE3_CROPS))
    return {
        "runs": runs.sort_values(["experiment", "seed", "run"]).reset_index(drop=True),
        "table2_coefficients": summary(runs["model"].isin(COEFFICIENT_MODELS)),
        "table3_event_vs_rgb": table3,
        "table4_per_au": _ordered(table4),
        "table5_alpha_ablation": summary(is_frame & events),
    }


SWEEP_COLUMNS = ["model", "modality", "lambda_alpha", "n_seeds", "seeds", "n_val_recordings", "val_top1_pct_mean",
                 "val_top1_pct_std", "chosen", "validation", "experiments", "runs"]


def lambda_sweep_table(runs: pd.DataFrame, predictions: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """The L_alpha sweep: validation top-1 (mean and std over seeds) per model, modality and lambda, with the
    chosen lambda (highest mean; ties go to the smaller lambda) marked ``chosen`` = ``yes``.

    ``runs`` must be scored on the validation split carved from the training recordings (``load_runs(...,
    split="val")``); the test split never chooses lambda.
    """
    rows = []
    for (model, modality, lam), group in runs.groupby(["model", "modality", "lambda_alpha"], sort=True):
        recordings = pd.concat([predictions[run]["recording_id"] for run in group["run"]]).nunique()
        rows.append({"model": model, "modality": modality, "lambda_alpha": lam, "n_seeds": group["seed"].nunique(),
                     "seeds": ";".join(str(s) for s in sorted(group["seed"])), "n_val_recordings": recordings,
                     "val_top1_pct_mean": group["top1_pct"].mean(),
                     "val_top1_pct_std": group["top1_pct"].std(ddof=1) if len(group) > 1 else np.nan,
                     "chosen": "no",
                     "validation": ";".join(sorted({f"{v:g} of the train recordings" if v > 0 else "val shards"
                                                    for v in group["val_fraction"]})),
                     "experiments": ";".join(sorted(set(group["experiment"]))),
                     "runs": ";".join(sorted(group["run"]))})
    table = pd.DataFrame(rows, columns=SWEEP_COLUMNS)
    for _, group in table.groupby(["model", "modality"], sort=True):
        best = group.sort_values(["val_top1_pct_mean", "lambda_alpha"], ascending=[False, True], kind="stable")
        table.loc[best.index[0], "chosen"] = "yes"
    return table
