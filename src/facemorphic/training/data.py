"""Datasets and the LightningDataModule that read the shards (or cached backbone features).

Whole recordings are stored; clips of L frames (75 by default, 2.5 s at 30 fps) are cut here:

- training: a random window per recording per epoch (``torch.randint``, seeded per worker by Lightning);
- evaluation: the centre window (``center``), or every window with a stride (``sliding``), whose logits
  the training stage averages per recording.

A recording shorter than L is padded by repeating its last frame; padded frames are marked invalid for
the coefficient loss. Items hold uint8 frames (the models normalise on the device), or float features
from the cache, or the coefficient sequence for the coefficient-only models, plus the per-frame targets.
HDF5 files are opened lazily in each worker process (h5py handles must not cross a fork).

When a split's inputs fit in :data:`IN_MEMORY_BYTES` (cached features and coefficients always do in the
default run), :class:`InMemoryClips` reads them once and cuts whole batches with one tensor gather: no
HDF5 read, no per-item collate and no worker process per step, which is what kept tiny models from
training at the speed of their arithmetic.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import h5py
import hdf5plugin  # noqa: F401  (registers the LZ4 filter the shards use)
import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from .. import MODALITIES
from ..errors import FacemorphicError, InputFileError
from ..shards.io import ShardSample, list_samples

log = logging.getLogger(__name__)

EVAL_WINDOWS = ("center", "sliding")


def carve_validation(samples: list[ShardSample], fraction: float, seed: int) -> tuple[list[ShardSample],
                                                                                 list[ShardSample]]:
    """Split training recordings into (fit, validation), stratified by AU, seeded and deterministic.

    The number of validation recordings is ``round(fraction * N)``, shared among the AUs by largest
    remainder (each AU gets ``floor(fraction * n_au)`` plus one for the AUs with the largest fractional parts,
    ties to the lower class index) and never an AU's last recording, so every AU stays in the fit set. Which
    recordings of an AU go to validation is a permutation of its recording ids (sorted) drawn from
    ``numpy.random.default_rng(seed)``, so the same shards and seed always give the same split, whatever the
    run's own seed: every run of a sweep is scored on the same validation recordings. Both lists keep the
    input order.
    """
    if not 0.0 <= fraction < 1.0:
        raise FacemorphicError(f"option 'val_fraction': {fraction!r} is not in [0, 1)")
    by_label: dict[int, list[ShardSample]] = {}
    for sample in samples:
        by_label.setdefault(sample.label, []).append(sample)
    labels = sorted(by_label)
    quotas = {label: fraction * len(by_label[label]) for label in labels}
    counts = {label: int(np.floor(quotas[label])) for label in labels}
    extra = round(fraction * len(samples)) - sum(counts.values())
    for label in sorted(labels, key=lambda lb: (-(quotas[lb] - counts[lb]), lb))[:max(extra, 0)]:
        counts[label] += 1
    rng = np.random.default_rng(seed)
    chosen: set[str] = set()
    for label in labels:
        ids = sorted(sample.recording_id for sample in by_label[label])
        order = rng.permutation(len(ids))
        chosen.update(ids[i] for i in order[:min(counts[label], len(ids) - 1)])
    fit = [sample for sample in samples if sample.recording_id not in chosen]
    validation = [sample for sample in samples if sample.recording_id in chosen]
    return fit, validation


def window_starts(n_frames: int, clip_length: int, mode: str, stride: int | None = None) -> list[int]:
    """Window start frames for evaluation: the centre window, or sliding windows covering the recording.

    Sliding windows step by ``stride`` (default L/2) and always include the window that ends at the last
    frame, so every frame is seen.
    """
    last = max(n_frames - clip_length, 0)
    if mode == "center":
        return [last // 2]
    if mode == "sliding":
        step = max(1, stride or clip_length // 2)
        starts = list(range(0, last + 1, step))
        if starts[-1] != last:
            starts.append(last)
        return starts
    raise ValueError(f"evaluation windows must be one of {EVAL_WINDOWS}, got {mode!r}")


def window_indices(start: int, clip_length: int, n_frames: int) -> tuple[np.ndarray, np.ndarray]:
    """Frame indices of a window (the last frame repeated past the end) and which of them are real."""
    positions = np.arange(start, start + clip_length)
    return np.minimum(positions, n_frames - 1), positions < n_frames


class ClipDataset(Dataset):
    """Clips of ``clip_length`` frames from shard samples.

    ``windows`` is ``random`` (one random window per sample per access), ``center`` or ``sliding``
    (one item per window). ``features_path`` switches the input from frames to cached backbone features.
    """

    def __init__(self, samples: list[ShardSample], modality: str, clip_length: int, windows: str = "random",
                 stride: int | None = None, features_path: str | Path | None = None):
        if modality not in MODALITIES:
            raise ValueError(f"modality must be one of {MODALITIES}, got {modality!r}")
        self.samples = [s for s in samples if s.n_frames > 0]
        for dropped in set(samples) - set(self.samples):
            log.warning("%s in %s has no frames; not used", dropped.recording_id, dropped.path)
        self.modality, self.clip_length, self.windows = modality, clip_length, windows
        self.features_path = str(features_path) if features_path else None
        if windows == "random":
            self.items = [(i, -1) for i in range(len(self.samples))]
        else:
            self.items = [(i, start) for i, s in enumerate(self.samples)
                          for start in window_starts(s.n_frames, clip_length, windows, stride)]
        self._files: dict[str, h5py.File] = {}
        self._pid = None

    def __len__(self) -> int:
        return len(self.items)

    def _file(self, path: str) -> h5py.File:
        if self._pid != os.getpid():  # a fresh worker: never reuse handles opened in another process
            self._files, self._pid = {}, os.getpid()
        if path not in self._files:
            self._files[path] = h5py.File(path, "r")
        return self._files[path]

    def __getitem__(self, item: int) -> dict:
        sample_index, start = self.items[item]
        sample = self.samples[sample_index]
        if start < 0:
            start = int(torch.randint(0, max(sample.n_frames - self.clip_length, 0) + 1, (1,)))
        indices, real = window_indices(start, self.clip_length, sample.n_frames)
        stop = int(indices[-1]) + 1
        group = self._file(sample.path)[sample.recording_id]
        local = indices - start
        alpha = group["alpha_au"][start:stop][local]
        valid = group["alpha_valid"][start:stop][local] & real
        out = {
            "alpha": torch.from_numpy(np.ascontiguousarray(alpha, dtype=np.float32)),
            "alpha_valid": torch.from_numpy(np.ascontiguousarray(valid)),
            "label": torch.tensor(sample.label, dtype=torch.long),
            "sample": torch.tensor(sample_index, dtype=torch.long),
            "start": torch.tensor(start, dtype=torch.long),
        }
        if self.modality == "coefficients":
            out["coefficients"], out["coefficient_valid"] = out["alpha"], out["alpha_valid"]
        elif self.features_path:
            features = self._file(self.features_path)
            if sample.recording_id not in features:
                raise InputFileError(self.features_path, f"no cached features for {sample.recording_id}")
            out["features"] = torch.from_numpy(features[sample.recording_id]["features"][start:stop][local])
        else:
            frames = group[self.modality][start:stop][local]
            out["frames"] = torch.from_numpy(np.ascontiguousarray(frames))
        return out


#: A split whose inputs and per-frame targets take at most this many bytes is held in memory.
IN_MEMORY_BYTES = 2 * 1024 ** 3
#: Smallest evaluation batch of in-memory features or coefficients.
EVAL_BATCH_IN_MEMORY = 64


def split_bytes(samples: list[ShardSample], modality: str, features_path: str | Path | None = None) -> int:
    """Bytes that a split's model inputs and per-frame targets take in memory (from the stored shapes)."""
    samples = [s for s in samples if s.n_frames > 0]
    if not samples:
        return 0
    first = samples[0]
    with h5py.File(first.path, "r") as file:
        group = file[first.recording_id]
        per_frame = int(np.prod(group["alpha_au"].shape[1:])) * 4 + 1  # float32 coefficients, bool valid
        if modality != "coefficients" and not features_path:
            per_frame += int(np.prod(group[modality].shape[1:])) * group[modality].dtype.itemsize
    if modality != "coefficients" and features_path:
        with h5py.File(features_path, "r") as file:
            if first.recording_id not in file:
                raise InputFileError(features_path, f"no cached features for {first.recording_id}")
            features = file[first.recording_id]["features"]
            per_frame += int(np.prod(features.shape[1:])) * 4
    return per_frame * sum(s.n_frames for s in samples)


def collated(batch: dict) -> dict:
    """The DataLoader ``collate_fn`` of :class:`InMemoryClips`, whose batched fetch is already a batch."""
    return batch


class InMemoryClips(ClipDataset):
    """The items of :class:`ClipDataset`, read once into memory and cut a whole batch at a time.

    Every recording's frames are concatenated along time (``offsets`` marks where each one starts), so a
    batch of windows is one index computation and one gather per array. ``__getitems__`` (the DataLoader's
    batched fetch) returns the collated batch, hence ``collate_fn=collated``; ``__getitem__`` gives the
    same single items as :class:`ClipDataset`. Random windows draw their starts from torch's global RNG in
    the loading process, so they are fixed by the run's seed alone.
    """

    def __init__(self, samples: list[ShardSample], modality: str, clip_length: int, windows: str = "random",
                 stride: int | None = None, features_path: str | Path | None = None):
        super().__init__(samples, modality, clip_length, windows, stride, features_path)
        alphas, valids, inputs = [], [], []
        for sample in self.samples:
            group = self._file(sample.path)[sample.recording_id]
            alphas.append(np.asarray(group["alpha_au"][()], dtype=np.float32))
            valids.append(np.asarray(group["alpha_valid"][()], dtype=bool))
            if modality == "coefficients":
                continue
            if self.features_path:
                features = self._file(self.features_path)
                if sample.recording_id not in features:
                    raise InputFileError(self.features_path, f"no cached features for {sample.recording_id}")
                inputs.append(np.asarray(features[sample.recording_id]["features"][()], dtype=np.float32))
            else:
                inputs.append(group[modality][()])
        for file in self._files.values():
            file.close()
        self._files = {}
        lengths = [s.n_frames for s in self.samples]
        self.lengths = torch.tensor(lengths, dtype=torch.long)
        self.offsets = torch.tensor(np.concatenate([[0], np.cumsum(lengths)[:-1]]), dtype=torch.long)
        self.labels = torch.tensor([s.label for s in self.samples], dtype=torch.long)
        self.item_samples = torch.tensor([i for i, _ in self.items], dtype=torch.long)
        self.item_starts = torch.tensor([start for _, start in self.items], dtype=torch.long)
        self.alpha = torch.from_numpy(np.concatenate(alphas)) if alphas else torch.zeros(0, 0)
        self.alpha_valid = torch.from_numpy(np.concatenate(valids)) if valids else torch.zeros(0, dtype=torch.bool)
        self.inputs = torch.from_numpy(np.concatenate(inputs)) if inputs else None
        self.input_key = ("coefficients" if modality == "coefficients" else
                          "features" if self.features_path else "frames")

    def __getitems__(self, indices) -> dict:
        items = torch.as_tensor(indices, dtype=torch.long)
        samples = self.item_samples[items]
        lengths = self.lengths[samples]
        starts = self.item_starts[items]
        random = starts < 0
        if random.any():
            room = (lengths[random] - self.clip_length).clamp(min=0) + 1
            starts = starts.clone()
            starts[random] = (torch.rand(int(random.sum()), dtype=torch.float64) * room).long().clamp(max=room - 1)
        positions = starts[:, None] + torch.arange(self.clip_length)
        real = positions < lengths[:, None]
        frames = self.offsets[samples][:, None] + torch.minimum(positions, lengths[:, None] - 1)
        batch = {
            "alpha": self.alpha[frames],
            "alpha_valid": self.alpha_valid[frames] & real,
            "label": self.labels[samples],
            "sample": samples,
            "start": starts,
        }
        if self.input_key == "coefficients":
            batch["coefficients"], batch["coefficient_valid"] = batch["alpha"], batch["alpha_valid"]
        else:
            batch[self.input_key] = self.inputs[frames]
        return batch

    def __getitem__(self, item: int) -> dict:
        return {key: value[0] for key, value in self.__getitems__([item]).items()}


class ShardDataModule(pl.LightningDataModule):
    """Train / val / test clip loaders over ``{shards_dir}/{split}/shard-*.h5``.

    With ``features_dir``, frames are replaced by the cached backbone features ``{features_dir}/{split}.h5``.
    With ``val_fraction`` > 0, the validation split is carved from the training recordings
    (:func:`carve_validation`, seeded by ``val_seed``) and the model is fitted on the rest; a ``val`` shard
    folder must then not exist (one validation set, never two).
    A split that fits in ``in_memory_bytes`` is read once (:class:`InMemoryClips`) and loaded without
    worker processes, which would only copy memory the main process already holds; evaluation windows
    of such a split then go in batches of at least :data:`EVAL_BATCH_IN_MEMORY` clips of features or
    coefficients (forward-only, so a larger batch changes nothing but the time).
    """

    def __init__(self, shards_dir: str | Path, modality: str, clip_length: int = 75, batch_size: int = 8,
                 num_workers: int = 2, features_dir: str | Path | None = None, eval_windows: str = "center",
                 eval_stride: int | None = None, splits: tuple[str, str, str] = ("train", "val", "test"),
                 seed: int = 0, pin_memory: bool | None = None, in_memory_bytes: int = IN_MEMORY_BYTES,
                 val_fraction: float = 0.0, val_seed: int = 0):
        super().__init__()
        self.shards_dir = Path(shards_dir)
        self.features_dir = Path(features_dir) if features_dir else None
        self.modality, self.clip_length, self.batch_size = modality, clip_length, batch_size
        self.num_workers, self.eval_windows, self.eval_stride = num_workers, eval_windows, eval_stride
        self.train_split, self.val_split, self.test_split = splits
        self.seed = seed
        self.pin_memory = torch.cuda.is_available() if pin_memory is None else pin_memory
        self.in_memory_bytes = in_memory_bytes
        self.val_fraction, self.val_seed = val_fraction, val_seed
        self.samples: dict[str, list[ShardSample]] = {}
        self.datasets: dict[tuple[str, str], ClipDataset] = {}

    def split_samples(self, split: str) -> list[ShardSample]:
        """The samples of a split: its shard folder's, or the fit / carved part of the training split."""
        if not self.samples:
            for name in {self.train_split, self.val_split, self.test_split, split}:
                folder = self.shards_dir / name
                self.samples[name] = list_samples(folder) if folder.is_dir() else []
            if self.val_fraction > 0:
                if self.samples[self.val_split]:
                    raise FacemorphicError(f"{self.shards_dir / self.val_split} exists and val_fraction is "
                                           f"{self.val_fraction}: choose one validation set")
                self.samples[self.train_split], self.samples[self.val_split] = carve_validation(
                    self.samples[self.train_split], self.val_fraction, self.val_seed)
        if split not in self.samples:
            folder = self.shards_dir / split
            self.samples[split] = list_samples(folder) if folder.is_dir() else []
        return self.samples[split]

    def features_path(self, split: str) -> Path | None:
        if self.features_dir is None or self.modality == "coefficients":
            return None
        if split == self.val_split and self.val_fraction > 0:
            split = self.train_split  # carved from the training recordings, whose features it reads
        path = self.features_dir / f"{split}.h5"
        if not path.is_file():
            raise InputFileError(path, "feature cache for this split not found (run `facemorphic features`)")
        return path

    def dataset(self, split: str, windows: str) -> ClipDataset:
        """The split's clips, in memory when they fit (kept for reuse: validation, then predictions)."""
        key = (split, windows)
        if key not in self.datasets:
            samples, features = self.split_samples(split), self.features_path(split)
            size = split_bytes(samples, self.modality, features)
            kind = InMemoryClips if size <= self.in_memory_bytes else ClipDataset
            log.info("%s clips (%s windows): %.1f MB, %s", split, windows, size / 1e6,
                     "in memory" if kind is InMemoryClips else f"read from HDF5 by {self.num_workers} worker(s)")
            self.datasets[key] = kind(samples, self.modality, self.clip_length, windows, self.eval_stride, features)
        return self.datasets[key]

    def setup(self, stage: str | None = None) -> None:
        if not self.split_samples(self.train_split) and stage in (None, "fit"):
            raise FacemorphicError(f"no training samples in {self.shards_dir / self.train_split}")

    def training_sampler(self, dataset: ClipDataset) -> DistributedSampler:
        """This process's share of each epoch's shuffled training items.

        The epoch's permutation depends only on the seed and the epoch (Lightning calls ``set_epoch``), and
        process r of W takes its items r, r+W, ... So with W processes of ``batch_size`` clips, step s of the
        W processes together sees exactly the clips of step s of one process with ``W * batch_size``, and
        DDP's averaged gradient is that batch's gradient: the result does not depend on how the batch is
        split over processes (the trainer runs with ``use_distributed_sampler=False`` so that Lightning does
        not substitute a sampler of its own). Without a trainer (or with one process) W = 1.
        """
        trainer = self.trainer
        world, rank = (trainer.world_size, trainer.global_rank) if trainer is not None else (1, 0)
        return DistributedSampler(dataset, num_replicas=world, rank=rank, shuffle=True, seed=self.seed)

    def _loader(self, dataset: ClipDataset, shuffle: bool, persistent: bool = True) -> DataLoader:
        # shuffled (training) items come from training_sampler; evaluation loaders give every process the whole
        # split, in order. The generator fixes the workers' base seed (their random windows)
        sampler = self.training_sampler(dataset) if shuffle else None
        if isinstance(dataset, InMemoryClips):
            batch_size = self.batch_size
            if not shuffle and dataset.input_key != "frames":
                batch_size = max(batch_size, EVAL_BATCH_IN_MEMORY)
            return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=0, collate_fn=collated,
                              pin_memory=self.pin_memory, generator=torch.Generator().manual_seed(self.seed))
        return DataLoader(
            dataset, batch_size=self.batch_size, sampler=sampler, num_workers=self.num_workers,
            pin_memory=self.pin_memory, persistent_workers=self.num_workers > 0 and persistent,
            generator=torch.Generator().manual_seed(self.seed),
        )

    def transfer_batch_to_device(self, batch, device, dataloader_idx):
        """Batches are flat dicts of tensors: move them directly (Lightning's generic walk costs more)."""
        return {key: value.to(device, non_blocking=True) for key, value in batch.items()}

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.dataset(self.train_split, "random"), shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.dataset(self.val_split, self.eval_windows), shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.dataset(self.test_split, self.eval_windows), shuffle=False)

    def eval_dataloader(self, split: str) -> DataLoader:
        """A one-off loader of evaluation windows for ``split`` (predictions after training)."""
        return self._loader(self.dataset(split, self.eval_windows), shuffle=False, persistent=False)
