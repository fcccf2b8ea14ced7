"""Tiny, learnable shards written directly in the shard format (for tests and benchmarks).

Each sample's class is visible in both streams and in the coefficients: a bright block whose position
in a grid encodes the class (moving a little from frame to frame, with noise), and coefficient k
oscillating for class k mod K. A model that learns anything beats chance on them within a few epochs,
which is what the training tests and the throughput benchmark need; they say nothing about real data.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from .. import ACTION_UNITS
from ..fileio import atomic_path
from .io import SHARD_FORMAT, write_sample


def toy_sample(label: int, n_frames: int, size: int, rng: np.random.Generator, n_coefficients: int = 32,
               invalid_fraction: float = 0.1) -> dict[str, np.ndarray]:
    """Frames, coefficients and validity of one toy recording of class ``label``."""
    grid = 5
    cell = size // grid
    row, col = divmod(label % (grid * grid), grid)
    frames = rng.integers(0, 40, size=(n_frames, 3, size, size), dtype=np.uint8)
    for t in range(n_frames):
        shift = int(round(np.sin(t / 3.0) * max(cell // 4, 1)))
        top = int(np.clip(row * cell + shift, 0, size - cell))
        frames[t, :, top:top + cell, col * cell:(col + 1) * cell] = 220
    alpha = rng.normal(0, 0.05, size=(n_frames, n_coefficients)).astype(np.float32)
    alpha[:, label % n_coefficients] += np.sin(np.arange(n_frames) / 4.0).astype(np.float32) + 1.0
    valid = rng.random(n_frames) >= invalid_fraction
    alpha[~valid] = 0
    return {"events": frames, "rgb": 255 - frames, "alpha_au": alpha, "alpha_valid": valid}


def write_toy_shards(out_dir: str | Path, samples_per_split: dict[str, int], n_frames: tuple[int, int] = (12, 20),
                     size: int = 32, n_classes: int = 24, seed: int = 0) -> None:
    """Write ``{out_dir}/{split}/shard-0.h5`` with the given number of samples per split (classes cycled)."""
    rng = np.random.default_rng(seed)
    for split, count in samples_per_split.items():
        path = Path(out_dir) / split / "shard-0.h5"
        with atomic_path(path) as tmp, h5py.File(tmp, "w") as file:
            file.attrs.update(format=SHARD_FORMAT, split=split, size=size, crop="full", modalities="events,rgb")
            for i in range(count):
                label = i % n_classes
                length = int(rng.integers(n_frames[0], n_frames[1] + 1))
                arrays = toy_sample(label, length, size, rng)
                rid = f"{split}-{i:04d}"
                write_sample(file, rid, dict(recording_id=rid, user=f"user{i % 3}", au=ACTION_UNITS[label],
                                             label=label, split=split, n_frames=length,
                                             event_representation="toy", event_channels=3), arrays)
