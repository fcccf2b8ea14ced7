"""Clip windows and the data module: bounds, padding, sliding coverage, workers."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch

from facemorphic.shards import list_samples
from facemorphic.shards.toy import write_toy_shards
from facemorphic.training import ClipDataset, ShardDataModule, window_indices, window_starts

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    root = tmp_path_factory.mktemp("toy")
    write_toy_shards(root, {"train": 6, "test": 4}, n_frames=(5, 14), size=16)
    return root


def test_window_starts():
    assert window_starts(100, 75, "center") == [12]
    assert window_starts(40, 75, "center") == [0]
    assert window_starts(100, 40, "sliding", 20) == [0, 20, 40, 60]
    assert window_starts(101, 40, "sliding", 20) == [0, 20, 40, 60, 61]  # the last frame is always covered
    assert window_starts(10, 4, "sliding") == [0, 2, 4, 6]
    indices, real = window_indices(3, 5, 6)
    assert indices.tolist() == [3, 4, 5, 5, 5] and real.tolist() == [True, True, True, False, False]


def test_center_and_sliding_items_hold_the_stored_frames(toy):
    samples = list_samples(toy / "test")
    for mode in ("center", "sliding"):
        dataset = ClipDataset(samples, "events", clip_length=8, windows=mode, stride=3)
        covered = {i: set() for i in range(len(samples))}
        for item in (dataset[i] for i in range(len(dataset))):
            sample = samples[int(item["sample"])]
            start = int(item["start"])
            with h5py.File(sample.path, "r") as file:
                group = file[sample.recording_id]
                frames, alpha, valid = group["events"][()], group["alpha_au"][()], group["alpha_valid"][()]
            n = sample.n_frames
            expect_index = np.minimum(np.arange(start, start + 8), n - 1)
            np.testing.assert_array_equal(item["frames"].numpy(), frames[expect_index])
            np.testing.assert_array_equal(item["alpha"].numpy(), alpha[expect_index])
            real = np.arange(start, start + 8) < n
            np.testing.assert_array_equal(item["alpha_valid"].numpy(), valid[expect_index] & real)
            assert item["label"].item() == sample.label
            covered[int(item["sample"])].update(expect_index.tolist())
        if mode == "sliding":
            assert all(covered[i] == set(range(samples[i].n_frames)) for i in covered)


def test_random_windows_stay_inside_and_vary(toy):
    samples = list_samples(toy / "train")
    dataset = ClipDataset(samples, "rgb", clip_length=4, windows="random")
    torch.manual_seed(0)
    starts = {i: {int(dataset[i]["start"]) for _ in range(30)} for i in range(len(samples))}
    for i, sample in enumerate(samples):
        assert min(starts[i]) >= 0 and max(starts[i]) <= max(sample.n_frames - 4, 0)
        if sample.n_frames >= 8:
            assert len(starts[i]) > 1


def test_coefficient_items_and_loader_with_workers_matches_no_workers(toy):
    one = ShardDataModule(toy, "coefficients", clip_length=6, batch_size=3, num_workers=0)
    two = ShardDataModule(toy, "coefficients", clip_length=6, batch_size=3, num_workers=2)
    batches_a = list(one.eval_dataloader("test"))
    batches_b = list(two.eval_dataloader("test"))
    assert len(batches_a) == len(batches_b) == 2
    for a, b in zip(batches_a, batches_b):
        assert set(a) == {"alpha", "alpha_valid", "label", "sample", "start", "coefficients", "coefficient_valid"}
        for key in a:
            torch.testing.assert_close(a[key], b[key])
    train = next(iter(two.train_dataloader()))
    assert train["coefficients"].shape == (3, 6, 32)
