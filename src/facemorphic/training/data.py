"""Datasets and the LightningDataModule that read the shards (or cached backbone features).

Whole recordings are stored; clips of L frames (75 by default, 2.5 s at 30 fps) are cut here:

- training: a random window per recording per epoch (``torch.randint``, seeded per worker by Lightning);
- evaluation: the centre window (``center``), or every window with a stride (``sliding``), whose logits
  the training stage averages per recording.

A recording shorter than L is padded by repeating its last frame; padded frames are marked invalid for
the coefficient loss. Items hold uint8 frames (the models normalise on the device), or float features
from the cache, or the coefficient sequence for the coefficient-only models, plus the per-frame targets.
HDF5 files are opened lazily in each worker process (h5py handles must not cross a fork).
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
from torch.utils.data import DataLoader, Dataset

from ..errors import FacemorphicError, InputFileError
from ..shards.io import ShardSample, list_samples

log = logging.getLogger(__name__)

MODALITIES = ("events", "rgb", "coefficients")
EVAL_WINDOWS = ("center", "sliding")


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


class ShardDataModule(pl.LightningDataModule):
    """Train / val / test clip loaders over ``{shards_dir}/{split}/shard-*.h5``.

    With ``features_dir``, frames are replaced by the cached backbone features ``{features_dir}/{split}.h5``.
    """

    def __init__(self, shards_dir: str | Path, modality: str, clip_length: int = 75, batch_size: int = 8,
                 num_workers: int = 2, features_dir: str | Path | None = None, eval_windows: str = "center",
                 eval_stride: int | None = None, splits: tuple[str, str, str] = ("train", "val", "test"),
                 seed: int = 0, pin_memory: bool | None = None):
        super().__init__()
        self.shards_dir = Path(shards_dir)
        self.features_dir = Path(features_dir) if features_dir else None
        self.modality, self.clip_length, self.batch_size = modality, clip_length, batch_size
        self.num_workers, self.eval_windows, self.eval_stride = num_workers, eval_windows, eval_stride
        self.train_split, self.val_split, self.test_split = splits
        self.seed = seed
        self.pin_memory = torch.cuda.is_available() if pin_memory is None else pin_memory
        self.samples: dict[str, list[ShardSample]] = {}

    def split_samples(self, split: str) -> list[ShardSample]:
        if split not in self.samples:
            folder = self.shards_dir / split
            self.samples[split] = list_samples(folder) if folder.is_dir() else []
        return self.samples[split]

    def features_path(self, split: str) -> Path | None:
        if self.features_dir is None or self.modality == "coefficients":
            return None
        path = self.features_dir / f"{split}.h5"
        if not path.is_file():
            raise InputFileError(path, "feature cache for this split not found (run `facemorphic features`)")
        return path

    def dataset(self, split: str, windows: str) -> ClipDataset:
        return ClipDataset(self.split_samples(split), self.modality, self.clip_length, windows, self.eval_stride,
                           self.features_path(split))

    def setup(self, stage: str | None = None) -> None:
        if not self.split_samples(self.train_split) and stage in (None, "fit"):
            raise FacemorphicError(f"no training samples in {self.shards_dir / self.train_split}")

    def _loader(self, dataset: ClipDataset, shuffle: bool, persistent: bool = True) -> DataLoader:
        # the generator fixes the shuffle order and the workers' base seed (their random windows)
        return DataLoader(
            dataset, batch_size=self.batch_size, shuffle=shuffle, num_workers=self.num_workers,
            pin_memory=self.pin_memory, persistent_workers=self.num_workers > 0 and persistent,
            generator=torch.Generator().manual_seed(self.seed),
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.dataset(self.train_split, "random"), shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.dataset(self.val_split, self.eval_windows), shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.dataset(self.test_split, self.eval_windows), shuffle=False)

    def eval_dataloader(self, split: str) -> DataLoader:
        """A one-off loader of evaluation windows for ``split`` (predictions after training)."""
        return self._loader(self.dataset(split, self.eval_windows), shuffle=False, persistent=False)
