"""The paper's tables, recomputed independently from run folders' predictions."""

from __future__ import annotations

import json
import statistics

import numpy as np
import pandas as pd
import pytest

from facemorphic import ACTION_UNITS
from facemorphic.cli import main
from facemorphic.errors import InputFileError

RUNS = [  # experiment, model, modality, lambda_alpha, seeds
    ("coeff_transformer", "coeff_transformer", "coefficients", 0.0, [0, 1]),
    ("coeff_lstm", "coeff_lstm", "coefficients", 0.0, [0]),
    ("resnet18_lstm_events", "resnet18_lstm", "events", 0.0, [0, 1, 2]),
    ("resnet18_lstm_rgb", "resnet18_lstm", "rgb", 0.0, [0, 1]),
    ("resnet18_lstm_events_alpha", "resnet18_lstm", "events", 1.0, [0, 1]),
    ("i3d_events_alpha", "i3d", "events", 0.5, [0]),
]


@pytest.fixture
def run_folders(tmp_path):
    rng = np.random.default_rng(0)
    folders = {}
    for experiment, model, modality, lam, seeds in RUNS:
        for seed in seeds:
            folder = tmp_path / "runs" / experiment / f"seed-{seed}"
            folder.mkdir(parents=True)
            n = 40
            labels = rng.integers(0, 24, n)
            logits = rng.normal(size=(n, 24))
            logits[np.arange(n), labels] += rng.uniform(0, 3)  # some skill, different per run
            frame = pd.DataFrame({"recording_id": [f"r{i}" for i in range(n)], "user": "u", "split": "test",
                                  "au": [ACTION_UNITS[l] for l in labels], "label": labels})
            for c in range(24):
                frame[f"logit_{c:02d}"] = logits[:, c]
            val = frame.iloc[:5].assign(split="val", label=0)  # must not count
            pd.concat([frame, val]).to_csv(folder / "predictions.csv", index=False)
            (folder / "run.json").write_text(json.dumps(dict(experiment=experiment, model=model, modality=modality,
                                                             lambda_alpha=lam, seed=seed)))
            folders[(experiment, seed)] = (folder, labels, logits)
    return tmp_path, folders


def topk_accuracy(labels, logits, k):
    """Obvious reference: the true class is among the k largest logits (sorted, descending)."""
    hits = [int(labels[i]) in list(np.argsort(-logits[i], kind="stable")[:k]) for i in range(len(labels))]
    return 100.0 * sum(hits) / len(hits)


def test_tables_recomputed_independently(run_folders):
    root, folders = run_folders
    assert main(["evaluate", "--runs-dir", str(root / "runs"), "--tables-dir", str(root / "tables"),
                 "--figures-dir", str(root / "figures")]) == 0
    tables = {name: pd.read_csv(root / "tables" / f"{name}.csv") for name in
              ("table2_coefficients", "table3_event_vs_rgb", "table4_per_au", "table5_alpha_ablation", "runs")}
    expected = {}
    for experiment, model, modality, lam, seeds in RUNS:
        per_seed = {k: [topk_accuracy(folders[(experiment, s)][1], folders[(experiment, s)][2], k) for s in seeds]
                    for k in (1, 3, 5)}
        expected[experiment] = per_seed
    membership = {
        "table2_coefficients": {"coeff_transformer", "coeff_lstm"},
        "table3_event_vs_rgb": {"resnet18_lstm_events", "resnet18_lstm_rgb"},
        "table5_alpha_ablation": {"resnet18_lstm_events", "resnet18_lstm_events_alpha", "i3d_events_alpha"},
    }
    for name, experiments in membership.items():
        table = tables[name].set_index("experiment")
        assert set(table.index) == experiments, name
        for experiment in experiments:
            row = table.loc[experiment]
            for k in (1, 3, 5):
                values = expected[experiment][k]
                assert row[f"top{k}_mean"] == pytest.approx(statistics.mean(values), abs=1e-3)
                if len(values) > 1:
                    assert row[f"top{k}_std"] == pytest.approx(statistics.stdev(values), abs=1e-3)
                else:
                    assert np.isnan(row[f"top{k}_std"])
            assert row["n_test"] == 40
            assert row["runs"].split(";") == sorted(str(folders[(experiment, s)][0]) for s in
                                                    next(r[4] for r in RUNS if r[0] == experiment))
    paper = tables["table3_event_vs_rgb"].set_index("experiment")
    assert paper.loc["resnet18_lstm_rgb", ["paper_top1", "paper_top3", "paper_top5"]].tolist() == [25.65, 38.86, 46.12]
    t5 = tables["table5_alpha_ablation"].set_index("experiment")
    assert t5.loc["resnet18_lstm_events", "paper_top1"] == 46.23 and t5.loc["resnet18_lstm_events", "l_alpha"] == "no"
    assert t5.loc["resnet18_lstm_events_alpha", "paper_top1"] == 50.21
    assert t5.loc["i3d_events_alpha", "paper_top5"] == 79.41
    assert tables["table2_coefficients"].set_index("experiment").loc["coeff_transformer", "paper_top1"] == 69.27

    # Table 4: per AU, over the runs with L_alpha on events
    t4 = tables["table4_per_au"]
    assert set(t4["experiment"]) == {"resnet18_lstm_events_alpha", "i3d_events_alpha"}
    for experiment, seeds in (("resnet18_lstm_events_alpha", [0, 1]), ("i3d_events_alpha", [0])):
        rows = t4[t4["experiment"] == experiment].set_index("au")
        assert rows.loc["all", "top1_mean"] == pytest.approx(statistics.mean(expected[experiment][1]), abs=1e-3)
        for label in range(24):
            per_seed = []
            for s in seeds:
                _, labels, logits = folders[(experiment, s)]
                mask = labels == label
                if mask.any():
                    per_seed.append(topk_accuracy(labels[mask], logits[mask], 1))
            if per_seed:
                assert rows.loc[str(ACTION_UNITS[label]), "top1_mean"] == pytest.approx(statistics.mean(per_seed),
                                                                                       abs=1e-3)
    assert len(tables["runs"]) == sum(len(r[4]) for r in RUNS)
    everything = pd.read_csv(root / "tables" / "predictions.csv")
    assert len(everything) == 40 * sum(len(r[4]) for r in RUNS)
    one = everything[(everything["experiment"] == "coeff_lstm") & (everything["seed"] == 0)]
    assert one["top3"].mean() * 100 == pytest.approx(expected["coeff_lstm"][3][0])
    figures = sorted(p.name for p in (root / "figures").iterdir())
    assert figures == sorted(f"confusion_{r[0]}.png" for r in RUNS)


def test_a_run_without_predictions_is_named(run_folders):
    root, folders = run_folders
    folder = folders[("coeff_lstm", 0)][0]
    (folder / "predictions.csv").unlink()
    from facemorphic.evaluation import evaluate_runs

    with pytest.raises(InputFileError, match="predictions.csv"):
        evaluate_runs([folder], root / "tables")
