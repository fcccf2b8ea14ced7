"""The landmarks file ``results/landmarks/{user}.h5``: writer and the one reader every stage uses
(docs/ARCHITECTURE.md, landmarks file); and the per-input CSV.

HDF5 group ``{recording_id}``: ``landmarks`` float32 ``[T, 68, 3]`` (iBUG-68, pixels, NaN where invalid;
z is 0 for 2D backends), ``bbox`` float32 ``[T, 4]`` (x1, y1, x2, y2: tight box of the landmarks),
``score`` float32 ``[T]``, ``valid`` bool ``[T]``, plus ``interpolated``, ``detected`` and ``decoded`` bool
``[T]`` and ``time_s`` float64 ``[T]`` (see :class:`~facemorphic.landmarks.tracking.LandmarkTrack`); attrs
``backend``, ``landmarks_type`` and whatever the caller adds (frame counts, problems). gzip level 4,
chunked by clip (up to 256 frames).

The per-input CSV has one row per frame, in one of two formats:

* ``facemorphic`` (:func:`track_table`): ``frame`` (from 0), ``time`` (s), ``valid``, ``interpolated``,
  ``score``, ``box_x1, box_y1, box_x2, box_y2``, ``x0..x67``, ``y0..y67``, ``z0..z67`` (pixels);
* ``openface`` (:func:`openface_table`): the column names of OpenFace 2's FeatureExtraction CSV for the
  values we have (OpenFace wiki "Output Format"; its ``RecorderCSV`` writes ``frame, face_id, timestamp,
  confidence, success`` for sequences): ``frame`` (counted from 1, as OpenFace does), ``face_id`` (always
  0: the one tracked face), ``timestamp`` (s), ``confidence`` (the backend's score, 0 where no face; not
  OpenFace's calibrated 0..1), ``success`` (1 where the frame has landmarks, detected or interpolated),
  then ``x_0..x_67``, ``y_0..y_67`` (2D iBUG-68 landmarks in pixels, empty where no face). OpenFace's 3D
  landmarks ``X_0..Z_67`` are in millimetres in camera space; we have no metric depth, so they are left
  out, as are gaze, pose and AU columns. Columns are separated by ``,`` (OpenFace writes ``", "``; readers
  that strip spaces take both).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

import h5py
import numpy as np
import pandas as pd

from ..errors import InputFileError
from ..fileio import open_hdf5_for_reading
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
    """Read a group written by :func:`write_track_group` back into a :class:`LandmarkTrack`.

    A missing dataset or a shape that is not the contract's is an :class:`InputFileError` naming the file
    and the group.
    """
    path, name = group.file.filename, group.name.lstrip("/")
    missing = [field for field in TRACK_FIELDS if field not in group]
    if missing:
        raise InputFileError(path, f"{name} lacks {', '.join(missing)} (not written by the landmarks stage)")
    track = LandmarkTrack(**{field: group[field][()] for field in TRACK_FIELDS})
    n_frames = len(track.landmarks)
    if track.landmarks.ndim != 3 or track.landmarks.shape[1:] != (68, 3):
        raise InputFileError(path, f"{name}/landmarks has shape {track.landmarks.shape}, expected [T, 68, 3]")
    expected = {"bbox": (n_frames, 4), "score": (n_frames,), "valid": (n_frames,), "interpolated": (n_frames,),
                "detected": (n_frames,), "decoded": (n_frames,), "time_s": (n_frames,)}
    for field, shape in expected.items():
        if getattr(track, field).shape != shape:
            raise InputFileError(path, f"{name}/{field} has shape {getattr(track, field).shape}, expected {shape}")
    track.valid = track.valid.astype(bool)
    return track


def open_landmarks_file(path: str | Path) -> h5py.File:
    """Open a landmarks file for reading; a missing or unreadable file is an :class:`InputFileError`."""
    return open_hdf5_for_reading(path, "landmarks file")


def iter_landmark_tracks(path: str | Path) -> Iterator[tuple[str, LandmarkTrack]]:
    """``(recording_id, track)`` for every recording of a landmarks file, in recording-id order."""
    with open_landmarks_file(path) as handle:
        for name in sorted(handle):
            yield name, read_track_group(handle[name])


def read_landmark_track(path: str | Path, recording_id: str) -> LandmarkTrack:
    """The track of one recording of a landmarks file."""
    with open_landmarks_file(path) as handle:
        if recording_id not in handle:
            failures = json.loads(handle.attrs.get("failures", "{}"))
            reason = f" (the landmarks stage failed on it: {failures[recording_id]})" if recording_id in failures \
                else ""
            raise InputFileError(path, f"no group for recording {recording_id}{reason}")
        return read_track_group(handle[recording_id])


#: OpenFace FeatureExtraction's leading sequence columns and its 2D landmark columns, in its order
OPENFACE_COLUMNS = (("frame", "face_id", "timestamp", "confidence", "success")
                    + tuple(f"x_{k}" for k in range(68)) + tuple(f"y_{k}" for k in range(68)))


def openface_table(track: LandmarkTrack) -> pd.DataFrame:
    """The per-frame table of a track with OpenFace's column names (``openface`` in the module docstring),
    so tools written for OpenFace's CSV read our landmarks without a mapping of their own."""
    columns = {
        "frame": np.arange(1, len(track) + 1),
        "face_id": np.zeros(len(track), dtype=int),
        "timestamp": track.time_s,
        "confidence": np.where(track.valid, track.score, 0.0),
        "success": track.valid.astype(int),
    }
    for axis, letter in enumerate("xy"):
        for point in range(track.landmarks.shape[1]):
            columns[f"{letter}_{point}"] = track.landmarks[:, point, axis]
    return pd.DataFrame(columns, columns=list(OPENFACE_COLUMNS))


def track_table(track: LandmarkTrack) -> pd.DataFrame:
    """The per-frame CSV table of a track (``facemorphic`` in the module docstring)."""
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
