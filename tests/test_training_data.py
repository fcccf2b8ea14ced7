"""Clip windows and the data module: bounds, padding, sliding coverage, in-memory batches, workers."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch

from facemorphic.shards import list_samples
from facemorphic.shards.toy import write_toy_shards
from facemorphic.training import ClipDataset, ShardDataModule, window_indices, window_starts
from facemorphic.training.data import InMemoryClips, split_bytes

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


@pytest.mark.parametrize("dataset_class", [ClipDataset, InMemoryClips])
def test_center_and_sliding_items_hold_the_stored_frames(toy, dataset_class):
    samples = list_samples(toy / "test")
    for mode in ("center", "sliding"):
        dataset = dataset_class(samples, "events", clip_length=8, windows=mode, stride=3)
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


@pytest.mark.parametrize("dataset_class", [ClipDataset, InMemoryClips])
def test_random_windows_stay_inside_and_vary(toy, dataset_class):
    samples = list_samples(toy / "train")
    dataset = dataset_class(samples, "rgb", clip_length=4, windows="random")
    torch.manual_seed(0)
    starts = {i: {int(dataset[i]["start"]) for _ in range(30)} for i in range(len(samples))}
    for i, sample in enumerate(samples):
        assert min(starts[i]) >= 0 and max(starts[i]) <= max(sample.n_frames - 4, 0)
        if sample.n_frames >= 8:
            assert len(starts[i]) > 1


def test_in_memory_batches_equal_the_hdf5_loader_with_workers(toy):
    in_memory = ShardDataModule(toy, "coefficients", clip_length=6, batch_size=3, num_workers=2, eval_windows="sliding")
    from_hdf5 = ShardDataModule(toy, "coefficients", clip_length=6, batch_size=3, num_workers=2,
                                eval_windows="sliding", in_memory_bytes=0)
    memory_loader, hdf5_loader = in_memory.eval_dataloader("test"), from_hdf5.eval_dataloader("test")
    assert isinstance(memory_loader.dataset, InMemoryClips) and memory_loader.num_workers == 0
    assert type(hdf5_loader.dataset) is ClipDataset and hdf5_loader.num_workers == 2
    batches_a, batches_b = list(memory_loader), list(hdf5_loader)
    keys = {"alpha", "alpha_valid", "label", "sample", "start", "coefficients", "coefficient_valid"}
    assert all(set(batch) == keys for batch in batches_a + batches_b)
    for key in keys:
        torch.testing.assert_close(torch.cat([b[key] for b in batches_a]), torch.cat([b[key] for b in batches_b]))
    assert sum(len(b["label"]) for b in batches_a) == len(memory_loader.dataset) > 4  # several windows each
    train = next(iter(in_memory.train_dataloader()))
    assert train["coefficients"].shape == (3, 6, 32)


def test_split_bytes_counts_every_stored_frame(toy):
    samples = list_samples(toy / "train")
    frames = sum(s.n_frames for s in samples)
    assert split_bytes(samples, "coefficients") == frames * (32 * 4 + 1)
    assert split_bytes(samples, "events") == frames * (32 * 4 + 1 + 3 * 16 * 16)
