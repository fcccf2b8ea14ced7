"""The coefficients file ``results/coefficients/{user}.h5``: writer and reader (docs/ARCHITECTURE.md,
coefficients file); landmarks are read through :mod:`facemorphic.landmarks.io`, their one reader.

Group ``{recording_id}``: ``alpha_au`` float32 ``[T, K]``, ``camera`` float32 ``[T, 2, 4]``,
``residual_px`` float32 ``[T]`` (NaN where invalid), ``alpha_id`` float32 ``[K_id]``, ``valid`` bool ``[T]``;
attr ``identity_frame`` (-1 when no valid frame). Root attrs: the fit's settings. gzip level 4, chunked
by up to 256 frames.
"""

from __future__ import annotations

import os
from typing import Iterator

import h5py
import numpy as np

from ..errors import InputFileError
from ..fileio import atomic_path, open_hdf5_for_reading
from ..landmarks.io import iter_landmark_tracks
from .recording import RecordingFit

FIT_ARRAYS = ("alpha_au", "camera", "residual_px", "alpha_id", "valid")


def iter_landmark_recordings(path: str | os.PathLike) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    """``(recording_id, landmarks [T, 68, 3], valid [T])`` of each recording of a landmarks file: what
    the fit uses of :func:`facemorphic.landmarks.io.iter_landmark_tracks`."""
    for recording_id, track in iter_landmark_tracks(path):
        yield recording_id, track.landmarks, track.valid


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


def open_coefficients_file(path: str | os.PathLike) -> h5py.File:
    """Open a coefficients file for reading; a missing or unreadable file is an :class:`InputFileError`."""
    return open_hdf5_for_reading(path, "coefficients file")


def read_recording_fit(handle: h5py.File, recording_id: str) -> RecordingFit:
    """One recording's fit from an open coefficients file (arrays as written: float32, NaN where invalid)."""
    path = handle.filename
    if recording_id not in handle:
        raise InputFileError(path, f"no group for recording {recording_id}")
    group = handle[recording_id]
    missing = [name for name in FIT_ARRAYS if name not in group]
    missing += ["attr identity_frame"] if "identity_frame" not in group.attrs else []
    if missing:
        raise InputFileError(path, f"{recording_id} lacks {', '.join(missing)} (not written by the fit stage)")
    fit = RecordingFit(group["alpha_au"][()], group["alpha_id"][()], group["camera"][()], group["residual_px"][()],
                       group["valid"][()].astype(bool), int(group.attrs["identity_frame"]))
    n_frames = len(fit.valid)
    if fit.alpha_au.ndim != 2 or len(fit.alpha_au) != n_frames or fit.camera.shape != (n_frames, 2, 4) \
            or fit.residual_px.shape != (n_frames,):
        raise InputFileError(path, f"{recording_id}: alpha_au {fit.alpha_au.shape}, camera {fit.camera.shape}, "
                                   f"residual_px {fit.residual_px.shape} do not fit valid ({n_frames},)")
    return fit


def read_coefficients(path: str | os.PathLike) -> dict[str, RecordingFit]:
    """Every recording's fit in a coefficients file, by recording id."""
    with open_coefficients_file(path) as handle:
        return {recording_id: read_recording_fit(handle, recording_id) for recording_id in sorted(handle)}
