"""The whole DAG on a tiny synthetic config: every stage runs, and the tables come from the predictions.

The table numbers are recomputed here from each run's predictions.csv logits (top-k by ranking the true
class's logit), independently of facemorphic.evaluation.
"""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
TINY_CONFIG = REPO / "tests" / "config.tiny.yaml"


@pytest.fixture(scope="module")
def pipeline(tiny_pipeline):
    return tiny_pipeline


def topk_from_logits(predictions: pd.DataFrame, k: int) -> float:
    aus = (1, 2, 4, 6, 7, 9, 10, 12, 14, 15, 17, 23, 24, 25, 26, 27, 43, 45, 51, 52, 53, 54, 55, 56)
    logits = predictions[[f"logit_AU{au}" for au in aus]].to_numpy(float)
    labels = predictions["label"].to_numpy(int)
    true = logits[np.arange(len(labels)), labels]
    return 100.0 * float(np.mean((logits > true[:, None]).sum(axis=1) < k))


def test_every_stage_wrote_its_contract(pipeline):
    manifest = pd.read_csv(pipeline / "results" / "manifest.csv")
    config = yaml.safe_load(TINY_CONFIG.read_text())["synthetic"]
    per_user = len(config["aus"]) * config["repetitions"] + config["free"] + config["reading"]
    assert len(manifest) == config["n_users"] * per_user and set(manifest.split) == {"train", "test"}
    for user in ("user00", "user01"):
        with h5py.File(pipeline / "results" / "events" / f"{user}.h5") as events, \
                h5py.File(pipeline / "results" / "coefficients" / f"{user}.h5") as coefficients:
            for rid in manifest[manifest.user == user].recording_id:
                n = int(manifest.set_index("recording_id").loc[rid, "rgb_frames"])
                assert events[rid]["frames"].shape[0] == n == coefficients[rid]["alpha_au"].shape[0]
                assert coefficients[rid]["alpha_au"].shape[1] == 8
                assert coefficients[rid]["valid"][()].mean() > 0.9


def test_tables_are_recomputed_from_the_predictions(pipeline):
    tables = pipeline / "results" / "tables"
    table2 = pd.read_csv(tables / "table2_coefficients.csv")
    table3 = pd.read_csv(tables / "table3_event_vs_rgb.csv")
    table5 = pd.read_csv(tables / "table5_alpha_ablation.csv")
    table4 = pd.read_csv(tables / "table4_per_au.csv")
    assert set(table2.experiment) == {"coeff_lstm"}
    assert set(table3.experiment) == {"lstm_events", "lstm_rgb", "lstm_rgb_face", "i3d_events"}
    crops = table3.set_index("experiment")["crop"]
    assert crops["lstm_rgb_face"] == "face" and crops["lstm_rgb"].startswith("full view")
    assert table3.set_index("experiment")["paper_top1_pct"].isna()["lstm_rgb_face"]  # the paper has no face crop
    assert set(table5.experiment) == {"lstm_events", "lstm_events_alpha", "i3d_events"}
    for column in ("top1_pct_mean", "top1_pct_std", "top1_pct_ci95_low", "top1_pct_ci95_high", "top3_pct_mean",
                   "top5_pct_mean", "paper_top1_pct", "paper_top3_pct", "paper_top5_pct", "chance_top1_pct",
                   "n_test_recordings", "n_seeds", "backbone_weights", "protocol", "one_class_flag"):
        assert column in table3.columns
    assert table2.loc[0, "paper_top1_pct"] == pytest.approx(50.34)  # the paper's LSTM on coefficients
    for table in (table2, table3, table5):
        for row in table.itertuples():
            runs = row.runs.split(";")
            assert sorted(Path(r).name for r in runs) == ["seed-0", "seed-1"]
            per_seed = {k: [] for k in (1, 3, 5)}
            for run in runs:
                predictions = pd.read_csv(pipeline / run / "predictions.csv")
                predictions = predictions[predictions.split == "test"]
                assert json.loads((pipeline / run / "run.json").read_text())["experiment"] == row.experiment
                for k in per_seed:
                    per_seed[k].append(topk_from_logits(predictions, k))
            for k, values in per_seed.items():
                assert getattr(row, f"top{k}_pct_mean") == pytest.approx(np.mean(values), abs=1e-3)
            assert row.top1_pct_std == pytest.approx(np.std(per_seed[1], ddof=1), abs=1e-3)
            assert row.top1_pct_ci95_low <= row.top1_pct_mean <= row.top1_pct_ci95_high
    assert set(table4.columns) >= {"au", "experiment"}
    assert (pipeline / "results" / "figures" / "confusion_lstm_events.png").stat().st_size > 1000
