"""Landmarks for whole streams and whole users: reading, tracking, gap filling, smoothing, writing.

:func:`landmark_stream` runs one RGB stream (video, JPEG folder or image) through a backend;
:func:`landmark_manifest` does every recording of a manifest into one HDF5 file, where a recording whose
RGB cannot be read is logged and listed in the file's ``failures`` attribute while the others are written.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import h5py
import pandas as pd
from tqdm import tqdm

from ..dataset.manifest import read_manifest
from ..errors import FacemorphicError
from ..fileio import atomic_path
from ..video.reader import open_rgb
from .backends import LandmarkBackend
from .io import write_track_group
from .tracking import LandmarkTrack, fill_gaps, smooth_track, track_video
from .truth import read_truth_landmarks, truth_track

log = logging.getLogger(__name__)

MANIFEST_NEEDS = ("recording_id", "user", "rgb_path", "rgb_frames")


@dataclass
class TrackOptions:
    """How a stream is tracked: ``lanes`` frames per network batch, ``lane_frames`` frames per lane and
    chunk, gaps of up to ``max_gap`` frames interpolated, Savitzky-Golay window ``smooth`` (0: off)."""

    lanes: int = 1
    lane_frames: int = 32
    max_gap: int = 5
    smooth: int = 0
    progress: bool = True


def landmark_stream(backend: LandmarkBackend, path: str | Path, options: TrackOptions,
                    expected_frames: int | None = None) -> tuple[LandmarkTrack, dict]:
    """Landmarks of every frame of one RGB stream; returns the track and attrs describing the read.

    ``expected_frames`` (the manifest's ``rgb_frames``) fixes T so the track aligns with the event frames;
    a stream shorter than that leaves the missing frames invalid and says so in the attrs and the log.
    """
    reader = open_rgb(path)
    n_frames = int(expected_frames) if expected_frames is not None else reader.info.n_frames
    if reader.info.n_frames != n_frames:
        log.warning("%s: %d frames in the stream, %d expected; frames beyond the stream are invalid",
                    path, reader.info.n_frames, n_frames)
    # disable=None: a bar only when stderr is a terminal, so a redirected log gets no \r-bar lines
    with tqdm(total=min(n_frames, reader.info.n_frames), desc=Path(path).name, unit="frame",
              disable=None if options.progress else True, leave=False) as bar:
        track = track_video(backend, reader.batches(options.lanes * options.lane_frames), n_frames,
                            lanes=options.lanes, progress=bar)
    n_found = int(track.valid.sum())
    n_filled = fill_gaps(track, options.max_gap)
    smooth_track(track, options.smooth)
    attrs = {
        "rgb_path": str(path),
        "n_frames": n_frames,
        "n_frames_stream": int(reader.info.n_frames),
        "n_frames_decoded": int(track.decoded.sum()),
        "n_frames_with_face": n_found,
        "n_frames_interpolated": n_filled,
        "n_decode_errors": int(reader.decode_errors),
        "problems": reader.problems,
    }
    log.debug("%s: %d/%d frames with a face, %d interpolated, %d not decoded", path, n_found, n_frames,
              n_filled, n_frames - attrs["n_frames_decoded"])
    return track, attrs


def read_manifest_rows(path: str | Path, user: str | None = None) -> pd.DataFrame:
    """The manifest rows (of ``user`` when given) with the columns this stage needs.

    No rows is not an error: a user whose every recording was rejected at ingest gets an empty landmarks
    file (no groups), which the later stages accept, so one such user never stops the pipeline.
    """
    table = read_manifest(path, MANIFEST_NEEDS)
    return table if user is None else table[table["user"] == user]


def landmark_manifest(rows: pd.DataFrame, out: str | Path, backend_name: str,
                      backend: LandmarkBackend | None, options: TrackOptions,
                      truth_root: str | Path | None = None) -> dict[str, str]:
    """Write ``out`` (HDF5, one group per recording) for the manifest ``rows``; return the failures.

    ``backend`` is the image backend, or None with ``backend_name == "truth"`` (then ``truth_root`` is
    required). A recording that cannot be read is logged as an error and recorded in the root attribute
    ``failures`` (JSON ``{recording_id: reason}``); the others are written. If every recording of a non-empty
    manifest fails, nothing is written and :class:`FacemorphicError` lists the reasons.
    """
    failures: dict[str, str] = {}
    landmarks_type = "2D" if backend is None else backend.landmarks_type
    with atomic_path(out) as tmp, h5py.File(tmp, "w") as handle:
        handle.attrs["backend"] = backend_name
        handle.attrs["landmarks_type"] = landmarks_type
        if backend is not None and hasattr(backend, "device"):
            handle.attrs["device"] = backend.device
        for row in tqdm(list(rows.itertuples(index=False)), desc="landmarks", unit="rec",
                        disable=None if options.progress else True):
            expected = int(float(row.rgb_frames)) if str(row.rgb_frames).strip() not in ("", "nan") else None
            started = time.perf_counter()
            try:
                if backend is None:
                    points, times = read_truth_landmarks(truth_root, row.user, row.recording_id)
                    n_frames = expected if expected is not None else len(points)
                    track = truth_track(points, n_frames, times)
                    attrs = {"truth_path": str(Path(truth_root) / f"{row.user}.h5"), "n_frames": n_frames,
                             "n_frames_truth": len(points)}
                else:
                    track, attrs = landmark_stream(backend, row.rgb_path, options, expected)
            except FacemorphicError as exc:
                log.error("recording %s failed: %s", row.recording_id, exc)
                failures[row.recording_id] = str(exc)
                continue
            attrs.update(backend=backend_name, landmarks_type=landmarks_type, max_gap=options.max_gap,
                         smooth=options.smooth)
            write_track_group(handle, row.recording_id, track, attrs)
            log.info("%s: %d frames, %.1f%% valid (%d interpolated), %.1f s", row.recording_id, len(track),
                     100 * float(track.valid.mean()) if len(track) else 0.0, int(track.interpolated.sum()),
                     time.perf_counter() - started)
        handle.attrs["failures"] = json.dumps(failures)
        if len(rows) and len(failures) == len(rows):
            raise FacemorphicError(f"{out}: every recording failed: " + "; ".join(failures.values()))
    return failures
