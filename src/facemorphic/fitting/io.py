"""Reading landmarks files and writing coefficients files (DESIGN.md contracts)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import h5py
import numpy as np

from ..errors import InputFileError
from ..fileio import atomic_path
from .recording import RecordingFit


def iter_landmark_recordings(path: str | os.PathLike) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    """Yield ``(recording_id, landmarks [T, 68, D], valid [T])`` for each group of a landmarks file."""
    path = Path(path)
    if not path.is_file():
        raise InputFileError(path, "landmarks file not found")
    try:
        handle = h5py.File(path, "r")
    except OSError as exc:
        raise InputFileError(path, f"not an HDF5 file: {exc}") from exc
    with handle:
        for name in sorted(handle):
            group = handle[name]
            if not isinstance(group, h5py.Group) or "landmarks" not in group:
                raise InputFileError(path, f"group {name!r} has no 'landmarks' dataset")
            landmarks = group["landmarks"][()]
            if landmarks.ndim != 3 or landmarks.shape[1] != 68 or landmarks.shape[2] < 2:
                raise InputFileError(path, f"{name}/landmarks has shape {landmarks.shape}, expected [T, 68, 2 or 3]")
            if "valid" in group:
                valid = group["valid"][()].astype(bool)
                if valid.shape != (len(landmarks),):
                    raise InputFileError(path, f"{name}/valid has shape {valid.shape}, expected ({len(landmarks)},)")
            else:
                valid = np.ones(len(landmarks), dtype=bool)
            yield name, landmarks, valid


def write_coefficients(path: str | os.PathLike, fits: dict[str, RecordingFit], attrs: dict) -> None:
    """Write ``coefficients/{user}.h5``: one group per recording, float32, gzip level 4, atomically."""
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        for key, value in attrs.items():
            f.attrs[key] = value
        for recording_id, fit in fits.items():
            group = f.create_group(recording_id)
            n_frames = len(fit.valid)
            chunk_rows = max(1, min(n_frames, 256))
            for name, data in (("alpha_au", fit.alpha_au), ("camera", fit.camera), ("residual_px", fit.residual_px)):
                group.create_dataset(name, data=np.asarray(data, dtype=np.float32), compression="gzip",
                                     compression_opts=4, chunks=(chunk_rows,) + data.shape[1:] if n_frames else None)
            group.create_dataset("alpha_id", data=np.asarray(fit.alpha_id, dtype=np.float32))
            group.create_dataset("valid", data=np.asarray(fit.valid, dtype=bool))
            group.attrs["identity_frame"] = fit.identity_frame
