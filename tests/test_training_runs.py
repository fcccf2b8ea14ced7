"""Training runs on tiny toy shards: the feature cache changes nothing, run folders are complete, one
checkpoint without a val split, one log line per epoch, the same predictions whatever the thread count."""

from __future__ import annotations

import json
import re

import h5py
import numpy as np
import pandas as pd
import pytest
import torch

from facemorphic import ACTION_UNITS
from facemorphic.cli import main
from facemorphic.errors import InputFileError
from facemorphic.models.backbones import FrozenFrameEncoder
from facemorphic.shards import list_samples
from facemorphic.shards.toy import write_toy_shards
from facemorphic.training import RunConfig, train_run
from facemorphic.training.run import LOGIT_COLUMNS

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    root = tmp_path_factory.mktemp("toy")
    write_toy_shards(root / "shards", {"train": 24, "test": 12}, n_frames=(6, 10), size=32, n_classes=4)
    assert main(["features", "--shards-dir", str(root / "shards"), "--modality", "events", "--out-dir",
                 str(root / "features"), "--splits", "train", "test", "--device", "cpu", "--threads", "1"]) == 0
    return root


def test_cached_features_are_the_encoder_outputs(toy):
    sample = list_samples(toy / "shards" / "test")[2]
    with h5py.File(sample.path, "r") as file:
        frames = torch.from_numpy(file[sample.recording_id]["events"][()])
    with h5py.File(toy / "features" / "test.h5", "r") as file:
        cached = file[sample.recording_id]["features"][()]
        assert file.attrs["backbone"] == "random-init:seed=0" and file.attrs["modality"] == "events"
    direct = FrozenFrameEncoder(init_seed=0)(frames[None])[0].numpy()
    np.testing.assert_allclose(cached, direct, rtol=1e-5, atol=1e-5)


def _config(toy, out, **overrides):
    base = dict(shards_dir=str(toy / "shards"), out_dir=str(out), model="resnet18_lstm", modality="events",
                experiment="toy", epochs=1, batch_size=8, clip_length=6, num_workers=0, lambda_alpha=0.5,
                val_fraction=0.0)
    base.update(overrides)
    return RunConfig(**base)


def test_training_on_cached_features_gives_the_uncached_predictions(toy, tmp_path):
    cached = train_run(_config(toy, tmp_path / "cached", features_dir=str(toy / "features"), eval_windows="sliding",
                               eval_stride=2))
    uncached = train_run(_config(toy, tmp_path / "uncached", eval_windows="sliding", eval_stride=2))
    assert cached["feature_cache"] and not uncached["feature_cache"]
    a = pd.read_csv(tmp_path / "cached" / "predictions.csv")
    b = pd.read_csv(tmp_path / "uncached" / "predictions.csv")
    assert list(a["recording_id"]) == list(b["recording_id"]) and len(a) == 12
    np.testing.assert_allclose(a[LOGIT_COLUMNS].to_numpy(), b[LOGIT_COLUMNS].to_numpy(), rtol=1e-4, atol=1e-5)
    assert (a["predicted_label"] == b["predicted_label"]).all()
    # the checkpoint leaves the frozen trunk out, and still restores the trained heads
    state = torch.load(tmp_path / "cached" / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    assert not any(k.startswith("model.encoder.trunk.") for k in state)
    assert any(k.startswith("model.lstm.") for k in state)


def test_feature_cache_from_another_backbone_is_refused(toy, tmp_path):
    with pytest.raises(InputFileError, match="backbone"):
        train_run(_config(toy, tmp_path / "run", features_dir=str(toy / "features"), backbone_seed=1))


def test_cli_run_folder_is_complete_and_the_model_learns(toy, tmp_path, capsys):
    out = tmp_path / "runs" / "coeff_lstm" / "seed-3"
    assert main(["train", "--shards-dir", str(toy / "shards"), "--out-dir", str(out), "--experiment", "coeff_lstm",
                 "--model", "coeff_lstm", "--modality", "coefficients", "--seed", "3", "--epochs", "8",
                 "--clip-length", "6", "--num-workers", "0", "--batch-size", "4", "--val-fraction", "0"]) == 0
    assert {p.name for p in out.iterdir()} >= {"metrics.csv", "hparams.yaml", "checkpoints", "predictions.csv",
                                                "run.json"}
    # no val split to choose a best epoch: the final weights are the one checkpoint
    assert [p.name for p in (out / "checkpoints").iterdir()] == ["last.ckpt"]
    metrics = pd.read_csv(out / "metrics.csv")
    assert metrics["epoch"].max() == 7 and metrics["train_loss"].notna().sum() == 8
    # one plain log line per epoch on stderr (the CLI's logging), no progress bar
    stderr = capsys.readouterr().err
    epoch_lines = re.findall(r"facemorphic\.training\.module: (epoch .*)", stderr)
    assert [line.split()[1] for line in epoch_lines] == [f"{e}/8" for e in range(1, 9)]
    assert "it/s" not in stderr
    last_train = metrics.dropna(subset=["train_loss"]).iloc[-1]
    assert f"train loss {last_train['train_loss']:.4f}" in epoch_lines[-1]
    assert f"train top-1 {last_train['train_top1']:.3f}" in epoch_lines[-1]
    predictions = pd.read_csv(out / "predictions.csv")
    assert len(predictions) == 12 and set(predictions["split"]) == {"test"}
    logits = predictions[LOGIT_COLUMNS].to_numpy()
    labels = predictions["label"].to_numpy()
    order = np.argsort(-logits, axis=1)
    for k in (1, 3, 5):
        expected = [labels[i] in order[i, :k] for i in range(len(labels))]
        assert predictions[f"top{k}"].astype(bool).tolist() == expected
    assert (predictions["predicted_au"] == [ACTION_UNITS[i] for i in order[:, 0]]).all()
    run = json.loads((out / "run.json").read_text())
    assert run["experiment"] == "coeff_lstm" and run["seed"] == 3 and run["modality"] == "coefficients"
    assert run["test_top1"] == pytest.approx(predictions["top1"].mean())
    # toy classes are visible in the coefficients: 4 classes, chance is 25 %
    assert run["test_top1"] >= 0.75


def test_event_model_on_cached_features_learns_the_toy_classes(toy, tmp_path):
    summary = train_run(_config(toy, tmp_path / "learn", features_dir=str(toy / "features"), epochs=8,
                                batch_size=4, seed=1))
    assert summary["test_top1"] >= 0.75  # 4 toy classes: chance is 0.25


def _predictions_with_threads(toy, out, model, seed, threads):
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        train_run(_config(toy, out, model=model, modality="coefficients", lambda_alpha=0.0, epochs=3, batch_size=4,
                          num_workers=1, seed=seed))
    finally:
        torch.set_num_threads(previous)
    return pd.read_csv(out / "predictions.csv")[LOGIT_COLUMNS].to_numpy()


def test_same_seed_same_predictions_whatever_the_thread_count(toy, tmp_path):
    one = _predictions_with_threads(toy, tmp_path / "one", "coeff_lstm", 7, 1)
    two = _predictions_with_threads(toy, tmp_path / "two", "coeff_lstm", 7, 2)
    other_seed = _predictions_with_threads(toy, tmp_path / "other", "coeff_lstm", 8, 1)
    np.testing.assert_array_equal(one, two)
    assert not np.allclose(one, other_seed)


def test_transformer_predictions_across_thread_counts_agree_to_float_rounding(toy, tmp_path):
    # LayerNorm's weight/bias gradients are sums of per-thread partial sums on the CPU, so their last bits
    # depend on the thread count (torch has no deterministic variant); three epochs drift by ~1e-6
    one = _predictions_with_threads(toy, tmp_path / "one", "coeff_transformer", 7, 1)
    two = _predictions_with_threads(toy, tmp_path / "two", "coeff_transformer", 7, 2)
    np.testing.assert_allclose(one, two, rtol=0, atol=1e-4)
    assert (one.argmax(axis=1) == two.argmax(axis=1)).all()


def test_with_a_val_split_predictions_come_from_the_best_epoch(tmp_path):
    write_toy_shards(tmp_path / "shards", {"train": 16, "val": 8, "test": 8}, n_frames=(6, 9), size=16, n_classes=4)
    out = tmp_path / "run"
    summary = train_run(RunConfig(shards_dir=str(tmp_path / "shards"), out_dir=str(out), model="coeff_lstm",
                                  modality="coefficients", epochs=5, batch_size=4, clip_length=6, num_workers=0,
                                  predict_splits=["val", "test"], val_fraction=0.0))
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["best.ckpt", "last.ckpt"]
    metrics = pd.read_csv(out / "metrics.csv").dropna(subset=["val_top1"])
    best_epoch = int(metrics.loc[metrics["val_top1"].idxmax(), "epoch"])  # first epoch with the highest val top-1
    assert torch.load(out / "checkpoints" / "best.ckpt", weights_only=True)["epoch"] == best_epoch
    assert summary["best_checkpoint"].endswith("best.ckpt")
    assert summary["val_top1"] == pytest.approx(metrics["val_top1"].max())  # center windows: the same clips


def test_early_stopping_ends_a_run_that_stops_improving_and_records_it(tmp_path):
    """With a learning rate too small to change anything, the val top-1 never improves on the first epoch: the
    run ends after 1 + patience epochs, and run.json says so; patience 0 trains every epoch."""
    write_toy_shards(tmp_path / "shards", {"train": 12, "val": 8, "test": 4}, n_frames=(6, 7), size=16, n_classes=4)
    runs = {}
    for patience in (0, 2):
        runs[patience] = train_run(RunConfig(
            shards_dir=str(tmp_path / "shards"), out_dir=str(tmp_path / f"p{patience}"), model="coeff_lstm",
            modality="coefficients", epochs=6, batch_size=4, clip_length=6, num_workers=0, lr=1e-12,
            patience=patience, predict_splits=["val", "test"], val_fraction=0.0))
        metrics = pd.read_csv(tmp_path / f"p{patience}" / "metrics.csv").dropna(subset=["val_top1"])
        assert metrics["val_top1"].nunique() == 1
        assert len(metrics) == runs[patience]["epochs_run"]
    assert runs[0]["epochs_run"] == 6
    assert runs[2]["epochs_run"] == 3 and runs[2]["patience"] == 2
