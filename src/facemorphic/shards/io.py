"""Shard files: the training-ready samples, one HDF5 group per AU recording.

Layout of ``results/shards/{split}/shard-{k}.h5`` (file attrs ``format``, ``split``, ``size``, ``crop``,
``modalities``, with ``rgb_face`` also ``face_margin`` and ``face_smoothing_frames``, and in the training
split ``alpha_mean``, ``alpha_std``, ``alpha_stats_frames``: the :class:`AlphaStats` of that split's
coefficients; docs/ARCHITECTURE.md, shards):

- group ``{recording_id}`` with attrs ``recording_id``, ``user``, ``au``, ``label`` (class index 0..23),
  ``split``, ``n_frames``, and with events ``event_representation``, ``event_subwindows`` (S),
  ``event_channels_per_subwindow`` (C) and ``event_channels`` (S*C, before the 3-channel mapping), with
  ``rgb_face`` ``face_crop`` (``face``, or ``center: no valid face`` where the recording's landmark track
  has no face and the centre crop stands in);
- ``events`` uint8 ``[T, 3, size, size]``: event frames mapped to three channels as
  :mod:`facemorphic.shards.frames` documents, aligned one to one with the RGB frames;
- ``rgb`` uint8 ``[T, 3, size, size]``: RGB frames, cropped like the events (file attr ``crop``);
- ``rgb_face`` uint8 ``[T, 3, size, size]``: RGB frames cropped to the smoothed face box of the landmarks
  stage (:mod:`facemorphic.shards.face`);
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
MODALITY_DATASETS = {"events": "events", "rgb": "rgb", "rgb_face": "rgb_face"}


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


@dataclass(frozen=True)
class AlphaStats:
    """Per-component mean and standard deviation of the 3DMM AU coefficients over the valid frames of the
    training split: the training stage standardises its L_alpha targets with them (raw coefficients of
    unit-norm atoms are ~0.01-0.3, so an unscaled squared error is negligible beside the cross-entropy) and
    undoes the scaling for predictions. ``std`` is 1 where a component never varies."""

    mean: np.ndarray
    std: np.ndarray
    n_frames: int


#: file attrs of a training shard holding :class:`AlphaStats`
ALPHA_STATS_ATTRS = ("alpha_mean", "alpha_std", "alpha_stats_frames")


def alpha_statistics(alphas, valids) -> AlphaStats:
    """:class:`AlphaStats` of per-recording ``alpha_au [T, K]`` arrays over their ``valid [T]`` frames
    (float64 sums; population standard deviation)."""
    total, squares, count = None, None, 0
    for alpha, valid in zip(alphas, valids):
        kept = np.asarray(alpha, dtype=np.float64)[np.asarray(valid, dtype=bool)]
        total = kept.sum(axis=0) if total is None else total + kept.sum(axis=0)
        squares = (kept ** 2).sum(axis=0) if squares is None else squares + (kept ** 2).sum(axis=0)
        count += len(kept)
    if not count:
        raise ValueError("no valid coefficient frames to compute alpha statistics from")
    mean = total / count
    std = np.sqrt(np.maximum(squares / count - mean ** 2, 0.0))
    return AlphaStats(mean, np.where(std > 1e-8, std, 1.0), count)


def write_alpha_stats(file: h5py.File, stats: AlphaStats) -> None:
    """Store ``stats`` as attrs of an open shard file (every file of the training split carries them)."""
    file.attrs.update(alpha_mean=stats.mean, alpha_std=stats.std, alpha_stats_frames=stats.n_frames)


def read_alpha_stats(split_dir: str | Path) -> AlphaStats | None:
    """The :class:`AlphaStats` stored with a split's shards, or None when its files carry none."""
    for path in shard_files(split_dir):
        with h5py.File(path, "r") as file:
            if all(key in file.attrs for key in ALPHA_STATS_ATTRS):
                return AlphaStats(np.asarray(file.attrs["alpha_mean"], np.float64),
                                  np.asarray(file.attrs["alpha_std"], np.float64),
                                  int(file.attrs["alpha_stats_frames"]))
    return None


def split_alpha_statistics(samples: list[ShardSample]) -> AlphaStats:
    """:class:`AlphaStats` read from the shard groups of ``samples`` (one file open at a time)."""
    by_path: dict[str, list[str]] = {}
    for sample in samples:
        by_path.setdefault(sample.path, []).append(sample.recording_id)
    alphas, valids = [], []
    for path, recording_ids in by_path.items():
        with h5py.File(path, "r") as file:
            for recording_id in recording_ids:
                alphas.append(file[recording_id]["alpha_au"][()])
                valids.append(file[recording_id]["alpha_valid"][()])
    return alpha_statistics(alphas, valids)
