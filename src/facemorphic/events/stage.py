"""The events stage: every recording of one user -> ``results/events/{user}.h5`` (DESIGN.md contract).

Per recording (manifest row): the RGB frame times (:func:`facemorphic.video.read_frame_times`) and
``event_offset_us`` give one window per RGB frame (:mod:`.alignment`); the RAW file is streamed through
:class:`.frames.FrameBuilder` and the frames are written as they are finalized, so memory stays bounded.

Group ``{recording_id}``:

* ``frames`` uint8 ``[T, S*C, H, W]`` (T RGB frames, S sub-windows of C channels each, sub-window major;
  S = 1 by default so it is ``[T, C, H, W]``), chunked one frame per chunk, gzip level 1;
* ``t_end_us`` int64 ``[T]``: event-clock end of each frame's window;
* attrs: ``representation``, ``window_us`` (the nominal length drawn per (sub-)window: the median RGB
  frame period divided by S, or the accumulation time when shorter), ``sensor_size`` (W, H), ``frame_size`` (W, H), ``n_events`` (events drawn into the
  frames), ``n_events_decoded``, ``n_outside`` (dropped, outside the sensor), ``subwindows``,
  ``channels_per_subwindow``, ``event_offset_us``, ``raw_format``, ``raw_path``, ``first_event_us`` /
  ``last_event_us`` (-1 when none), ``truncated`` (RAW cut inside a word), ``events_end_before_rgb``
  (the stream ends before the last RGB frame starts: the missing part is empty frames),
  ``events_start_after_rgb``, ``n_empty_frames``, plus the representation's own parameters.

A recording that cannot be read is logged and listed in the root attribute ``failures`` (JSON list of
``{recording_id, raw_path, error}``) and gets no group; the other recordings are still written. Root
attrs also hold ``user``, ``n_recordings`` and the representation parameters.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..dataset.manifest import read_manifest as read_manifest_table
from ..errors import FacemorphicError, InputFileError
from ..fileio import atomic_path
from .alignment import rgb_frame_windows
from .frames import FrameBuilder
from .representations import Representation

log = logging.getLogger(__name__)

MANIFEST_COLUMNS = ("recording_id", "user", "raw_path", "rgb_path", "event_offset_us")


@dataclass(frozen=True)
class FrameConfig:
    """How frames are made: representation, output size (None = sensor size), sub-windows, accumulation."""

    representation: Representation
    size: tuple[int, int] | None = None
    subwindows: int = 1
    accumulation_us: int = 0


def write_recording(h5, recording_id: str, raw_path, rgb_times_s: np.ndarray, event_offset_us: int,
                    config: FrameConfig) -> dict:
    """Write one recording's group into open HDF5 file ``h5``; return its attrs."""
    rep = config.representation
    windows = rgb_frame_windows(rgb_times_s, event_offset_us, config.subwindows, config.accumulation_us)
    builder = FrameBuilder(raw_path, windows, rep, size=config.size)
    n_frames, subwindows, channels = windows.n_frames, windows.subwindows, rep.channels
    group = h5.create_group(recording_id)
    shape = (n_frames, subwindows * channels, builder.height, builder.width)
    frames = group.create_dataset("frames", shape=shape, dtype=np.uint8, chunks=(1,) + shape[1:],
                                  compression="gzip", compression_opts=1)
    group.create_dataset("t_end_us", data=windows.frame_ends.astype(np.int64))
    buffer = np.empty(shape[1:], np.uint8)
    for j, frame in builder:
        frame_index, sub = divmod(j, subwindows)
        buffer[sub * channels:(sub + 1) * channels] = frame
        if sub == subwindows - 1:
            frames[frame_index] = buffer
    stats = builder.stats
    n_empty = _count_empty_frames(builder, windows)
    period = int(np.rint(np.median(np.diff(windows.starts[::subwindows])))) if n_frames > 1 else int(
        windows.ends[-1] - windows.starts[0])
    attrs = {
        **rep.attrs(),
        "window_us": int(min(config.accumulation_us or period, period // subwindows)),
        "sensor_size": np.array(builder.reader.sensor_size, dtype=np.int64),
        "frame_size": np.array((builder.width, builder.height), dtype=np.int64),
        "n_events": stats.n_events_in_frames,
        "n_events_decoded": stats.n_events_decoded,
        "n_outside": stats.n_outside,
        "subwindows": subwindows,
        "channels_per_subwindow": channels,
        "event_offset_us": int(event_offset_us),
        "raw_format": stats.format,
        "raw_path": str(raw_path),
        "first_event_us": -1 if stats.first_event_us is None else stats.first_event_us,
        "last_event_us": -1 if stats.last_event_us is None else stats.last_event_us,
        "truncated": bool(stats.truncated),
        "events_end_before_rgb": bool(stats.last_event_us is None or stats.last_event_us < windows.starts[-subwindows]),
        "events_start_after_rgb": bool(stats.first_event_us is None
                                       or stats.first_event_us >= windows.ends[subwindows - 1]),
        "n_empty_frames": n_empty,
    }
    group.attrs.update(attrs)
    if attrs["truncated"] or attrs["events_end_before_rgb"] or attrs["events_start_after_rgb"]:
        log.warning("%s: truncated=%s events_end_before_rgb=%s events_start_after_rgb=%s (%d empty frames of %d)",
                    recording_id, attrs["truncated"], attrs["events_end_before_rgb"], attrs["events_start_after_rgb"],
                    n_empty, n_frames)
    return attrs


def _count_empty_frames(builder: FrameBuilder, windows) -> int:
    """RGB frames whose windows lie entirely outside the decoded event time span."""
    first, last = builder.stats.first_event_us, builder.stats.last_event_us
    if first is None:
        return windows.n_frames
    frame_starts = windows.starts[::windows.subwindows]
    return int(np.sum((windows.frame_ends <= first) | (frame_starts > last)))


def _resolve(path, data_root) -> Path:
    path = Path(str(path))
    return path if path.is_absolute() or data_root is None else Path(data_root) / path


def read_manifest(path: str | Path, user: str | None = None) -> pd.DataFrame:
    """Manifest rows (of ``user`` if given); raises :class:`InputFileError` for missing columns."""
    table = read_manifest_table(path, MANIFEST_COLUMNS, user)
    if table["recording_id"].duplicated().any():
        raise InputFileError(path, "manifest repeats a recording_id")
    return table


def build_user_file(manifest: pd.DataFrame, out: str | Path, config: FrameConfig, progress: bool = False,
                    data_root: str | Path | None = None) -> dict:
    """Write every manifest row into ``out`` (atomically); return ``{"written": [...], "failures": [...]}``.

    Relative ``raw_path`` / ``rgb_path`` values are taken relative to ``data_root`` when given.
    """
    import h5py

    from ..video import read_frame_times

    written, failures = [], []
    rows = list(manifest.itertuples(index=False))
    with atomic_path(out) as tmp, h5py.File(tmp, "w") as h5:
        iterator = rows
        if progress:
            from tqdm import tqdm

            iterator = tqdm(rows, desc=Path(out).stem, unit="rec")
        for row in iterator:
            rid = str(row.recording_id)
            raw_path, rgb_path = _resolve(row.raw_path, data_root), _resolve(row.rgb_path, data_root)
            try:
                times = read_frame_times(rgb_path)
                write_recording(h5, rid, raw_path, times, int(row.event_offset_us), config)
                written.append(rid)
            except Exception as exc:  # one bad recording must not lose the user's other recordings
                if rid in h5:
                    del h5[rid]
                reason = str(exc) if isinstance(exc, (FacemorphicError, OSError, ValueError)) else repr(exc)
                log.error("recording %s (%s) skipped: %s", rid, raw_path, reason)
                failures.append({"recording_id": rid, "raw_path": str(raw_path), "error": reason})
        h5.attrs.update({**config.representation.attrs(), "n_recordings": len(written),
                         "failures": json.dumps(failures), "subwindows": config.subwindows,
                         "accumulation_us": config.accumulation_us})
        users = sorted(set(manifest["user"].astype(str)))
        h5.attrs["user"] = users[0] if len(users) == 1 else json.dumps(users)
    return {"written": written, "failures": failures}
