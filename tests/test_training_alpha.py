"""L_alpha that can act: training-split coefficient statistics stored with the shards, standardised targets,
the validation split carved from the training recordings, and the coefficient R^2 in original units."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import r2_score
from test_shards_build import upstream  # noqa: F401  (the shards stage's small upstream files)

from facemorphic.cli import main
from facemorphic.errors import FacemorphicError
from facemorphic.shards import list_samples
from facemorphic.shards.io import ShardSample, read_alpha_stats
from facemorphic.shards.toy import write_toy_shards
from facemorphic.training import RunConfig, train_run
from facemorphic.training.data import carve_validation
from facemorphic.training.module import AUModule
from facemorphic.training.run import AlphaAccumulator

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_shards_store_the_training_split_alpha_statistics(upstream):  # noqa: F811
    root, _, coefficients, _ = upstream
    out = root / "shards"
    assert main(["shards", "--manifest", str(root / "manifest.csv"), "--events-dir", str(root / "events"),
                 "--coefficients-dir", str(root / "coefficients"), "--out-dir", str(out), "--size", "16",
                 "--num-shards", "2", "--modalities", "events", "rgb"]) == 0
    train = list_samples(out / "train")
    kept = []  # the valid frames of the training recordings as the shards hold them (common prefix)
    for sample in train:
        alpha, valid = coefficients[sample.user][sample.recording_id]
        kept.append(alpha[:sample.n_frames][valid[:sample.n_frames]].astype(np.float64))
    kept = np.concatenate(kept)
    stats = read_alpha_stats(out / "train")
    assert stats.n_frames == len(kept) > 5
    np.testing.assert_allclose(stats.mean, kept.mean(axis=0), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(stats.std, kept.std(axis=0), rtol=1e-5)
    for path in (out / "train").glob("shard-*.h5"):  # every training file carries them
        with h5py.File(path) as file:
            np.testing.assert_allclose(file.attrs["alpha_std"], stats.std)
    assert read_alpha_stats(out / "test") is None  # the test split never informs the scaling


def _samples(counts: dict[int, int]) -> list[ShardSample]:
    return [ShardSample("x.h5", f"r{label:02d}-{i:02d}", "u", label, label, "train", 10)
            for label, n in counts.items() for i in range(n)]


def test_validation_is_carved_stratified_deterministic_and_exact():
    counts = {0: 10, 1: 5, 2: 3, 3: 2, 4: 1}
    samples = _samples(counts)
    fit, val = carve_validation(samples, 0.2, seed=0)
    assert len(val) == round(0.2 * len(samples)) == 4
    assert {s.recording_id for s in fit} | {s.recording_id for s in val} == {s.recording_id for s in samples}
    assert not {s.recording_id for s in fit} & {s.recording_id for s in val}
    per_label = pd.Series([s.label for s in val]).value_counts().to_dict()
    # largest remainder: floors 2, 1, 0, 0, 0 (=3); the one left goes to the largest fraction, 0.6 (label 2)
    assert per_label == {0: 2, 1: 1, 2: 1}
    assert {s.label for s in fit} == set(counts)  # every AU stays in the fit set
    assert carve_validation(samples, 0.2, seed=0) == (fit, val)
    other = {s.recording_id for s in carve_validation(samples, 0.2, seed=1)[1]}
    assert other != {s.recording_id for s in val}
    # the split does not depend on the order the samples come in
    assert {s.recording_id for s in carve_validation(samples[::-1], 0.2, seed=0)[1]} == {s.recording_id
                                                                                          for s in val}
    with pytest.raises(FacemorphicError, match="val_fraction"):
        carve_validation(samples, 1.0, seed=0)


def test_alpha_r2_is_sklearns_variance_weighted_r2_over_valid_frames():
    generator = torch.Generator().manual_seed(0)
    accumulator, targets, predictions = AlphaAccumulator(), [], []
    for _ in range(3):
        target = torch.randn(4, 6, 5, generator=generator) * torch.tensor([0.01, 0.1, 0.3, 0.05, 0.2])
        predicted = target + 0.05 * torch.randn(4, 6, 5, generator=generator)
        valid = torch.rand(4, 6, generator=generator) > 0.3
        accumulator.add(predicted, target, valid)
        targets.append(target[valid].numpy())
        predictions.append(predicted[valid].numpy())
    y, y_hat = np.concatenate(targets), np.concatenate(predictions)
    assert accumulator.frames == len(y)
    expected = r2_score(y, y_hat, multioutput="variance_weighted")
    assert accumulator.r2() == pytest.approx(expected, rel=1e-6) and 0 < expected < 1


def test_standardised_targets_make_l_alpha_comparable_to_the_cross_entropy():
    # raw coefficients of unit-norm atoms: ~0.01-0.3, as the fits give
    rng = np.random.default_rng(1)
    scale = np.linspace(0.01, 0.3, 32)
    alpha = torch.from_numpy(rng.normal(0.05, 1.0, size=(4, 8, 32)) * scale).float()
    valid = torch.ones(4, 8, dtype=torch.bool)
    batch = {"alpha": alpha, "alpha_valid": valid, "label": torch.zeros(4, dtype=torch.long)}
    mean, std = alpha.reshape(-1, 32).mean(0), alpha.reshape(-1, 32).std(0, unbiased=False)
    raw = AUModule("resnet18_lstm", 8, lambda_alpha=1.0, n_coefficients=32)
    scaled = AUModule("resnet18_lstm", 8, lambda_alpha=1.0, n_coefficients=32, alpha_mean=mean.tolist(),
                      alpha_std=std.tolist())
    logits, zeros = torch.zeros(4, 24), torch.zeros(4, 8, 32)  # a head that predicts the mean / zero
    raw_loss = raw.losses(logits, zeros, batch)["alpha_sq"].item()
    scaled_loss = scaled.losses(logits, scaled.standardised_alpha(mean.expand(4, 8, 32)), batch)["alpha_sq"].item()
    # standardised: predicting the mean costs exactly K (unit variance per component, summed over 32)
    assert scaled_loss == pytest.approx(32.0, rel=1e-4)
    assert raw_loss < 0.1 * scaled_loss
    # and the scaling is undone exactly for predictions in original units
    torch.testing.assert_close(scaled.alpha_in_original_units(scaled.standardised_alpha(alpha)), alpha)


@pytest.mark.parametrize("model_name", ["coeff_lstm", "coeff_transformer"])
def test_coefficient_models_see_standardised_inputs_whatever_the_units(model_name):
    """The same coefficients in other units (x1000, shifted) with their statistics give the same logits;
    a fit gap reads as the mean face whatever is stored there (NaN included)."""
    rng = np.random.default_rng(2)
    alpha = torch.from_numpy(rng.normal(0.02, 0.03, size=(3, 6, 32))).float()
    valid = torch.ones(3, 6, dtype=torch.bool)
    valid[1, 2:4] = False
    mean, std = alpha.reshape(-1, 32).mean(0), alpha.reshape(-1, 32).std(0, unbiased=False)
    torch.manual_seed(0)
    small = AUModule(model_name, 6, n_coefficients=32, alpha_mean=mean.tolist(), alpha_std=std.tolist()).eval()
    large = AUModule(model_name, 6, n_coefficients=32, alpha_mean=(1000 * mean + 5).tolist(),
                     alpha_std=(1000 * std).tolist()).eval()
    large.model.load_state_dict(small.model.state_dict())
    gap = alpha.clone()
    gap[1, 2:4] = float("nan")
    with torch.no_grad():
        logits_small, _ = small({"coefficients": gap, "coefficient_valid": valid})
        logits_large, _ = large({"coefficients": 1000 * alpha + 5, "coefficient_valid": valid})
        # what the model itself receives: unit-variance inputs, not the raw hundredths
        seen = small.standardised_alpha(alpha)[valid]
    assert torch.isfinite(logits_small).all()
    torch.testing.assert_close(logits_small, logits_large, rtol=1e-4, atol=1e-4)
    assert seen.std().item() == pytest.approx(1.0, rel=0.1) and alpha.std().item() < 0.05


def test_run_with_carved_validation_records_its_split_statistics_and_r2(tmp_path):
    write_toy_shards(tmp_path / "shards", {"train": 20, "test": 8}, n_frames=(6, 9), size=16, n_classes=4)
    out = tmp_path / "run"
    summary = train_run(RunConfig(shards_dir=str(tmp_path / "shards"), out_dir=str(out), model="resnet18_lstm",
                                  modality="events", lambda_alpha=1.0, epochs=2, batch_size=4, clip_length=6,
                                  num_workers=0, predict_splits=["val", "test"], val_fraction=0.2, val_seed=0))
    train = list_samples(tmp_path / "shards" / "train")
    fit, val = carve_validation(train, 0.2, seed=0)
    predictions = pd.read_csv(out / "predictions.csv")
    assert sorted(predictions.loc[predictions["split"] == "val", "recording_id"]) == sorted(
        s.recording_id for s in val)
    assert summary["n_fit_recordings"] == 16 and summary["n_val_recordings"] == 4
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["best.ckpt", "last.ckpt"]
    # the toy shards carry no statistics: they are computed from the fit recordings (validation left out)
    with h5py.File(train[0].path) as file:
        alpha = np.concatenate([file[s.recording_id]["alpha_au"][()][file[s.recording_id]["alpha_valid"][()]]
                                for s in fit]).astype(np.float64)
    run = json.loads((out / "run.json").read_text())
    np.testing.assert_allclose(run["alpha_stats"]["mean"], alpha.mean(axis=0), rtol=1e-6, atol=1e-9)
    assert run["alpha_stats"]["frames"] == len(alpha)
    assert run["backbone_weights"] == "random-init:seed=0"
    assert np.isfinite(run["test_alpha_r2"]) and run["test_alpha_r2"] <= 1.0 and run["test_alpha_frames"] > 0
    assert [c for c in predictions.columns if c.startswith("logit_")][:3] == ["logit_AU1", "logit_AU2",
                                                                                "logit_AU4"]
