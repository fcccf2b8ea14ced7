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
            labels = np.arange(n) % 24  # the same test recordings (id -> AU) in every run
            logits = rng.normal(size=(n, 24))
            logits[np.arange(n), labels] += rng.uniform(0, 3)  # some skill, different per run
            frame = pd.DataFrame({"recording_id": [f"r{i}" for i in range(n)], "user": "u", "split": "test",
                                  "au": [ACTION_UNITS[l] for l in labels], "label": labels})
            for c, au in enumerate(ACTION_UNITS):
                frame[f"logit_AU{au}"] = logits[:, c]
            val = frame.iloc[:5].assign(split="val", label=0)  # must not count
            pd.concat([frame, val]).to_csv(folder / "predictions.csv", index=False)
            (folder / "run.json").write_text(json.dumps(dict(
                experiment=experiment, model=model, modality=modality, lambda_alpha=lam, seed=seed, epochs=7,
                val_fraction=0.2, backbone_weights="random-init:seed=0" if model != "i3d" else "random-init:run-seed",
                test_alpha_r2=0.5 + 0.1 * seed if lam > 0 else None)))
            folders[(experiment, seed)] = (folder, labels, logits)
    return tmp_path, folders


def topk_accuracy(labels, logits, k):
    """Obvious reference: the true class is among the k largest logits (sorted, descending)."""
    hits = [int(labels[i]) in list(np.argsort(-logits[i], kind="stable")[:k]) for i in range(len(labels))]
    return 100.0 * sum(hits) / len(hits)


def test_tables_recomputed_independently(run_folders):
    root, folders = run_folders
    assert main(["evaluate", "--runs-dir", str(root / "runs"), "--out-dir", str(root / "tables"),
                 "--figures-dir", str(root / "figures"), "--data-source", "synthetic"]) == 0
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
                assert row[f"top{k}_pct_mean"] == pytest.approx(statistics.mean(values), abs=1e-3)
                if len(values) > 1:
                    assert row[f"top{k}_pct_std"] == pytest.approx(statistics.stdev(values), abs=1e-3)
                else:
                    assert np.isnan(row[f"top{k}_pct_std"])
                assert row[f"top{k}_pct_ci95_low"] <= row[f"top{k}_pct_mean"] <= row[f"top{k}_pct_ci95_high"]
                assert row[f"chance_top{k}_pct"] == pytest.approx(100.0 * k / 24, abs=1e-3)
            assert row["n_test_recordings"] == 40 and row["data_source"] == "synthetic"
            assert row["protocol"] == "max 7 epochs, checkpoint of the best val top-1 (val: 0.2 of the train recordings)"
            assert row["one_class_flag"] == "no"
            assert row["runs"].split(";") == sorted(str(folders[(experiment, s)][0]) for s in
                                                    next(r[4] for r in RUNS if r[0] == experiment))
    paper = tables["table3_event_vs_rgb"].set_index("experiment")
    assert paper.loc["resnet18_lstm_rgb", ["paper_top1_pct", "paper_top3_pct", "paper_top5_pct"]].tolist() == [
        25.65, 38.86, 46.12]
    t5 = tables["table5_alpha_ablation"].set_index("experiment")
    assert t5.loc["resnet18_lstm_events", "paper_top1_pct"] == 46.23 and t5.loc["resnet18_lstm_events", "l_alpha"] == "no"
    assert t5.loc["resnet18_lstm_events_alpha", "paper_top1_pct"] == 50.21
    assert t5.loc["i3d_events_alpha", "paper_top5_pct"] == 79.41
    assert tables["table2_coefficients"].set_index("experiment").loc["coeff_transformer", "paper_top1_pct"] == 69.27
    # alpha R^2 from run.json, only where L_alpha is on
    assert t5.loc["resnet18_lstm_events_alpha", "alpha_r2_mean"] == pytest.approx(0.55)
    assert t5.loc["resnet18_lstm_events_alpha", "alpha_r2_std"] == pytest.approx(statistics.stdev([0.5, 0.6]), abs=1e-3)
    assert np.isnan(t5.loc["resnet18_lstm_events", "alpha_r2_mean"])
    assert t5.loc["i3d_events_alpha", "backbone_weights"] == "random-init:run-seed"

    # Table 4: per AU, over the runs with L_alpha on events
    t4 = tables["table4_per_au"]
    assert set(t4["experiment"]) == {"resnet18_lstm_events_alpha", "i3d_events_alpha"}
    for experiment, seeds in (("resnet18_lstm_events_alpha", [0, 1]), ("i3d_events_alpha", [0])):
        rows = t4[t4["experiment"] == experiment].set_index("au")
        assert rows.loc["all", "top1_pct_mean"] == pytest.approx(statistics.mean(expected[experiment][1]), abs=1e-3)
        for label in range(24):
            per_seed = []
            for s in seeds:
                _, labels, logits = folders[(experiment, s)]
                mask = labels == label
                if mask.any():
                    per_seed.append(topk_accuracy(labels[mask], logits[mask], 1))
            if per_seed:
                row = rows.loc[str(ACTION_UNITS[label])]
                assert row["top1_pct_mean"] == pytest.approx(statistics.mean(per_seed), abs=1e-3)
                assert row["chance_top1_pct"] == pytest.approx(100.0 / 24, abs=1e-3)
    # the paper's Table 4 beside ours, by AU
    lstm = t4[t4["experiment"] == "resnet18_lstm_events_alpha"].set_index("au")
    assert lstm.loc["1", "paper_top1_pct"] == 40.9 and lstm.loc["23", "paper_top1_pct"] == 0.0
    assert lstm.loc["54", "paper_top1_pct"] == 100.0 and lstm.loc["56", "paper_top1_pct"] == 98.6
    assert t4[t4["experiment"] == "i3d_events_alpha"].set_index("au").loc["12", "paper_top1_pct"] == 60.2
    assert list(lstm.index[:3]) == ["all", "1", "2"]
    assert len(tables["runs"]) == sum(len(r[4]) for r in RUNS)
    everything = pd.read_csv(root / "tables" / "predictions.csv")
    assert len(everything) == 40 * sum(len(r[4]) for r in RUNS)
    one = everything[(everything["experiment"] == "coeff_lstm") & (everything["seed"] == 0)]
    assert one["top3_hit"].mean() * 100 == pytest.approx(expected["coeff_lstm"][3][0])
    figures = sorted(p.name for p in (root / "figures").iterdir())
    assert figures == sorted(f"confusion_{r[0]}.png" for r in RUNS)


def test_a_run_without_predictions_is_named(run_folders):
    root, folders = run_folders
    folder = folders[("coeff_lstm", 0)][0]
    (folder / "predictions.csv").unlink()
    from facemorphic.evaluation import evaluate_runs

    with pytest.raises(InputFileError, match="predictions.csv"):
        evaluate_runs([folder], root / "tables")


def test_tied_and_nan_logits_score_as_misses_and_are_counted(run_folders):
    root, folders = run_folders
    folder, labels, logits = folders[("coeff_lstm", 0)]
    logits = logits.copy()
    logits[:10] = np.nan  # a diverged model on a quarter of the recordings
    logits[10:20] = 1.0  # all classes tied
    frame = pd.read_csv(folder / "predictions.csv")
    test_rows = (frame["split"] == "test").to_numpy()
    frame.loc[test_rows, [f"logit_AU{au}" for au in ACTION_UNITS]] = logits
    frame.to_csv(folder / "predictions.csv", index=False)
    from facemorphic.evaluation import evaluate_runs

    tables = evaluate_runs([folder], root / "tables")
    run = tables["runs"].iloc[0]
    assert run["nonfinite"] == 10
    for k in (1, 3, 5):
        finite = logits[20:]
        expected = 100.0 * sum(int(labels[20 + i]) in np.argsort(-finite[i])[:k] for i in range(20)) / 40
        assert run[f"top{k}_pct"] == pytest.approx(expected)
    assert tables["predictions"]["top5_hit"].iloc[:20].sum() == 0


def test_bootstrap_interval_agrees_with_the_exact_binomial_interval():
    from scipy.stats import binomtest

    from facemorphic.evaluation.tables import bootstrap_interval

    hits = (np.arange(400) % 10 < 3).astype(float)  # 120 of 400: 30 %
    low, high = bootstrap_interval(hits)
    exact = binomtest(120, 400).proportion_ci(0.95, method="exact")
    assert low == pytest.approx(100 * exact.low, abs=1.5) and high == pytest.approx(100 * exact.high, abs=1.5)
    assert bootstrap_interval(np.ones(30)) == (100.0, 100.0)
    # averaged over seeds, recordings that every seed gets right or wrong narrow the interval
    mixed = bootstrap_interval(np.r_[np.ones(20), np.zeros(20)])
    halves = bootstrap_interval(np.full(40, 0.5))
    assert halves == (50.0, 50.0) and mixed[0] < 40 and mixed[1] > 60


def test_a_model_that_predicts_one_class_is_flagged(run_folders):
    root, folders = run_folders
    folder, _, logits = folders[("coeff_lstm", 0)]
    collapsed = logits.copy()
    collapsed[:30, 5] = 100.0  # 30 of 40 clips go to AU 9 whatever they are
    frame = pd.read_csv(folder / "predictions.csv")
    test_rows = (frame["split"] == "test").to_numpy()
    frame.loc[test_rows, [f"logit_AU{au}" for au in ACTION_UNITS]] = collapsed
    frame.to_csv(folder / "predictions.csv", index=False)
    from facemorphic.evaluation import evaluate_runs

    tables = evaluate_runs([folder, folders[("coeff_transformer", 0)][0]], root / "tables")
    table2 = tables["table2_coefficients"].set_index("experiment")
    share = 100.0 * max(np.bincount(collapsed.argmax(axis=1))) / 40
    assert table2.loc["coeff_lstm", "top_prediction_share_pct"] == pytest.approx(share) and share >= 75
    assert table2.loc["coeff_lstm", "one_class_flag"] == "yes"
    assert table2.loc["coeff_transformer", "one_class_flag"] == "no"


def test_tables_are_byte_identical_whatever_the_run_order(run_folders):
    root, folders = run_folders
    from facemorphic.evaluation import evaluate_runs

    run_dirs = [folder for folder, _, _ in folders.values()]
    evaluate_runs(run_dirs, root / "a", data_source="synthetic")
    evaluate_runs(list(reversed(run_dirs)), root / "b", data_source="synthetic")
    names = sorted(p.name for p in (root / "a").iterdir())
    assert names == sorted(p.name for p in (root / "b").iterdir()) and len(names) == 6
    for name in names:
        assert (root / "a" / name).read_bytes() == (root / "b" / name).read_bytes(), name


def test_lambda_sweep_is_scored_on_validation_and_marks_the_best_lambda(tmp_path):
    rng = np.random.default_rng(3)
    skill = {0.0: 0.5, 0.1: 2.0, 1.0: 2.0, 10.0: 0.2}  # 0.1 and 1.0 tie in expectation; the data decide
    folders, val_top1 = [], {}
    for lam, strength in skill.items():
        for seed in (0, 1):
            folder = tmp_path / "sweep" / f"lambda-{lam:g}" / f"seed-{seed}"
            folder.mkdir(parents=True)
            n = 24
            labels = np.arange(n) % 24
            logits = rng.normal(size=(n, 24))
            logits[np.arange(n), labels] += strength
            frame = pd.DataFrame({"recording_id": [f"v{i}" for i in range(n)], "user": "u", "split": "val",
                                  "au": [ACTION_UNITS[l] for l in labels], "label": labels})
            for c, au in enumerate(ACTION_UNITS):
                frame[f"logit_AU{au}"] = logits[:, c]
            test = frame.assign(split="test", label=(labels + 1) % 24)  # must not count
            pd.concat([frame, test]).to_csv(folder / "predictions.csv", index=False)
            (folder / "run.json").write_text(json.dumps(dict(experiment=f"sweep_lstm_lambda{lam:g}",
                                                             model="resnet18_lstm", modality="events",
                                                             lambda_alpha=lam, seed=seed, val_fraction=0.2)))
            folders.append(folder)
            val_top1.setdefault(lam, []).append(topk_accuracy(labels, logits, 1))
    test_run = next(iter(run_dirs_of(tmp_path)))
    assert main(["evaluate", "--runs", str(test_run), "--sweep-runs", *map(str, folders), "--out-dir",
                 str(tmp_path / "tables")]) == 0
    sweep = pd.read_csv(tmp_path / "tables" / "table_lambda_sweep.csv")
    assert sweep["lambda_alpha"].tolist() == sorted(skill)
    for row in sweep.itertuples():
        assert row.val_top1_pct_mean == pytest.approx(statistics.mean(val_top1[row.lambda_alpha]), abs=1e-3)
        assert row.val_top1_pct_std == pytest.approx(statistics.stdev(val_top1[row.lambda_alpha]), abs=1e-3)
        assert row.n_seeds == 2 and row.n_val_recordings == 24 and row.validation == "0.2 of the train recordings"
    means = {lam: statistics.mean(v) for lam, v in val_top1.items()}
    best = min(means, key=lambda lam: (-round(means[lam], 6), lam))
    assert sweep.set_index("lambda_alpha")["chosen"].to_dict() == {lam: "yes" if lam == best else "no"
                                                                  for lam in skill}


def run_dirs_of(root):
    """A minimal test-split run folder for the main tables (evaluate needs at least one)."""
    folder = root / "runs" / "coeff_lstm" / "seed-0"
    folder.mkdir(parents=True)
    labels = np.arange(24)
    frame = pd.DataFrame({"recording_id": [f"t{i}" for i in labels], "user": "u", "split": "test",
                          "au": list(ACTION_UNITS), "label": labels})
    for c, au in enumerate(ACTION_UNITS):
        frame[f"logit_AU{au}"] = np.eye(24)[:, c]
    frame.to_csv(folder / "predictions.csv", index=False)
    (folder / "run.json").write_text(json.dumps(dict(experiment="coeff_lstm", model="coeff_lstm",
                                                     modality="coefficients", lambda_alpha=0.0, seed=0)))
    return [folder]
