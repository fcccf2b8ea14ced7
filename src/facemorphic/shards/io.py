"""Shard files: the training-ready samples, one HDF5 group per AU recording.

Layout of ``results/shards/{split}/shard-{k}.h5`` (file attrs ``format``, ``split``, ``size``):

- group ``{recording_id}`` with attrs ``recording_id``, ``user``, ``au``, ``label`` (class index 0..23),
  ``split``, ``n_frames``, ``event_representation``, ``event_channels`` (before the 3-channel mapping);
- ``events`` uint8 ``[T, 3, S, S]``: event frames, aligned one to one with the RGB frames;
- ``rgb`` uint8 ``[T, 3, S, S]``: RGB frames;
- ``alpha_au`` float32 ``[T, K]`` and ``alpha_valid`` bool ``[T]``: per-frame 3DMM AU coefficients
  (zeros where the fit is invalid).

Whole sequences are stored; windows of L frames are cut by the Dataset. Frames are chunked in 16-frame
clips and compressed with LZ4 (hdf5plugin), which decodes much faster than gzip so the loader keeps up.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import h5py
import hdf5plugin
import numpy as np

from ..errors import InputFileError

SHARD_FORMAT = "facemorphic-shard-1"
FRAME_CHUNK = 16
MODALITY_DATASETS = {"events": "events", "rgb": "rgb"}


def write_sample(file: h5py.File, recording_id: str, attrs: dict, arrays: dict[str, np.ndarray]) -> None:
    """Write one recording's group; frame arrays are chunked per 16-frame clip and LZ4-compressed."""
    group = file.create_group(recording_id)
    for key, value in attrs.items():
        group.attrs[key] = value
    for name, array in arrays.items():
        chunks = (min(FRAME_CHUNK, max(len(array), 1)),) + array.shape[1:] if len(array) else None
        group.create_dataset(name, data=array, chunks=chunks, **(hdf5plugin.LZ4() if len(array) else {}))


@dataclass(frozen=True)
class ShardSample:
    """Where one recording lives in the shards, and its label."""

    path: str
    recording_id: str
    user: str
    au: int
    label: int
    split: str
    n_frames: int


def shard_files(split_dir: str | Path) -> list[Path]:
    """The shard files of one split folder, in shard order (shard-0, shard-1, ...)."""
    split_dir = Path(split_dir)
    files = list(split_dir.glob("shard-*.h5"))
    return sorted(files, key=lambda p: int(p.stem.split("-")[1]) if p.stem.split("-")[1].isdigit() else 1 << 30)


def coefficient_count(split_dir: str | Path) -> int:
    """K, the number of 3DMM AU coefficients per frame, read from the first sample of a split folder."""
    for path in shard_files(split_dir):
        with h5py.File(path, "r") as file:
            for recording_id in sorted(file):
                return int(file[recording_id]["alpha_au"].shape[1])
    raise InputFileError(split_dir, "no samples in the shards")


def list_samples(split_dir: str | Path) -> list[ShardSample]:
    """Every sample of a split folder, in a fixed order (shard order, then recording id)."""
    samples = []
    for path in shard_files(split_dir):
        with h5py.File(path, "r") as file:
            if file.attrs.get("format") != SHARD_FORMAT:
                raise InputFileError(path, f"not a facemorphic shard (format attr {file.attrs.get('format')!r})")
            for recording_id in sorted(file):
                a = file[recording_id].attrs
                samples.append(ShardSample(str(path), recording_id, str(a["user"]), int(a["au"]), int(a["label"]),
                                           str(a["split"]), int(a["n_frames"])))
    return samples
