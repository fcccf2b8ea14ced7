"""The ``truth`` backend: true landmarks of the synthetic dataset, for ablations and tests.

The synthetic generator (``facemorphic.synthetic.truth``) writes ``{truth_root}/{user}.h5`` with one
group per recording_id holding ``landmarks_rgb`` float32 ``[T, 68, 2]`` (the 68 landmarks projected into the
RGB image, pixels) and ``rgb_times_s`` ``[T]`` (frame times, used when present). The file is read here directly with h5py, so this stage depends on the file format
only. Never chosen by ``auto``: true landmarks must be asked for.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from ..errors import InputFileError
from .tracking import LandmarkTrack

TRUTH_DATASET = "landmarks_rgb"
TIMES_DATASET = "rgb_times_s"


def truth_path(truth_root: str | Path, user: str) -> Path:
    return Path(truth_root) / f"{user}.h5"


def read_truth_landmarks(truth_root: str | Path, user: str, recording_id: str) -> tuple[np.ndarray, np.ndarray | None]:
    """``landmarks_rgb`` of one recording as float32 ``[T, 68, 2]``, and its ``rgb_times_s`` [T] if stored.

    Raises :class:`InputFileError` naming the file and the missing key.
    """
    path = truth_path(truth_root, user)
    if not path.is_file():
        raise InputFileError(path, "synthetic truth file does not exist")
    try:
        with h5py.File(path, "r") as handle:
            if recording_id not in handle:
                raise InputFileError(path, f"no group {recording_id!r} in the truth file")
            group = handle[recording_id]
            if TRUTH_DATASET not in group:
                raise InputFileError(path, f"group {recording_id!r} has no dataset {TRUTH_DATASET!r}")
            points = np.asarray(group[TRUTH_DATASET][()], dtype=np.float32)
            times = np.asarray(group[TIMES_DATASET][()], dtype=np.float64) if TIMES_DATASET in group else None
    except OSError as exc:
        raise InputFileError(path, f"cannot read truth file: {exc}") from None
    if points.ndim != 3 or points.shape[1:] != (68, 2):
        raise InputFileError(path, f"{recording_id}/{TRUTH_DATASET} has shape {points.shape}, expected [T, 68, 2]")
    return points, times


def truth_track(points: np.ndarray, n_frames: int, times_s: np.ndarray | None = None) -> LandmarkTrack:
    """A :class:`LandmarkTrack` of ``n_frames`` from true points ``[T, 68, 2]`` (score 1, z 0).

    Frames with non-finite truth, or beyond the truth's length, are invalid.
    """
    track = LandmarkTrack.empty(n_frames)
    count = min(n_frames, len(points))
    finite = np.all(np.isfinite(points[:count]), axis=(1, 2))
    track.landmarks[:count, :, :2] = np.where(finite[:, None, None], points[:count], np.nan)
    track.landmarks[:count, :, 2] = np.where(finite[:, None], 0.0, np.nan)
    track.valid[:count] = finite
    track.score[:count] = finite.astype(np.float32)
    track.decoded[:count] = True
    if times_s is not None:
        count_t = min(n_frames, len(times_s))
        track.time_s[:count_t] = times_s[:count_t]
    track.update_boxes()
    return track
