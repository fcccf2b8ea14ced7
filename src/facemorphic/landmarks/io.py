"""Write landmark tracks: one HDF5 group per recording (DESIGN.md contract) or one CSV per input.

HDF5 group ``{recording_id}``: ``landmarks`` float32 ``[T, 68, 3]`` (iBUG-68, pixels, NaN where invalid;
z is 0 for 2D backends), ``bbox`` float32 ``[T, 4]`` (x1, y1, x2, y2: tight box of the landmarks),
``score`` float32 ``[T]``, ``valid`` bool ``[T]``, plus ``interpolated``, ``detected`` and ``decoded`` bool
``[T]`` and ``time_s`` float64 ``[T]`` (see :class:`~facemorphic.landmarks.tracking.LandmarkTrack`); attrs
``backend``, ``landmarks_type`` and whatever the caller adds (frame counts, problems). gzip level 4,
chunked by clip (up to 256 frames).

The CSV has one row per frame, in the spirit of OpenFace's FeatureExtraction output: ``frame, time,
valid, interpolated, score, box_x1, box_y1, box_x2, box_y2, x0..x67, y0..y67, z0..z67``.
"""

from __future__ import annotations

import json

import h5py
import numpy as np
import pandas as pd

from .tracking import LandmarkTrack

FRAME_CHUNK = 256
TRACK_FIELDS = ("landmarks", "bbox", "score", "valid", "interpolated", "detected", "decoded", "time_s")


def write_track_group(handle: h5py.File, recording_id: str, track: LandmarkTrack, attrs: dict) -> None:
    """Write one recording's group into an open HDF5 file (replacing a group of that name)."""
    if recording_id in handle:
        del handle[recording_id]
    group = handle.create_group(recording_id)
    for name in TRACK_FIELDS:
        data = getattr(track, name)
        chunks = (max(1, min(FRAME_CHUNK, len(data))),) + data.shape[1:]
        group.create_dataset(name, data=data, chunks=chunks, compression="gzip", compression_opts=4)
    for key, value in attrs.items():
        group.attrs[key] = json.dumps(value) if isinstance(value, (list, dict)) else value


def read_track_group(group: h5py.Group) -> LandmarkTrack:
    """Read a group written by :func:`write_track_group` back into a :class:`LandmarkTrack`."""
    return LandmarkTrack(**{name: group[name][()] for name in TRACK_FIELDS})


def track_table(track: LandmarkTrack) -> pd.DataFrame:
    """The per-frame CSV table of a track (columns in the module docstring)."""
    columns = {
        "frame": np.arange(len(track)),
        "time": track.time_s,
        "valid": track.valid.astype(int),
        "interpolated": track.interpolated.astype(int),
        "score": track.score,
    }
    for k, name in enumerate(("box_x1", "box_y1", "box_x2", "box_y2")):
        columns[name] = track.bbox[:, k]
    for axis, letter in enumerate("xyz"):
        for point in range(track.landmarks.shape[1]):
            columns[f"{letter}{point}"] = track.landmarks[:, point, axis]
    return pd.DataFrame(columns)
