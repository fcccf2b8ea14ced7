"""The events file ``results/events/{user}.h5``: its record, writer and reader (docs/ARCHITECTURE.md,
events file).

Group ``{recording_id}``:

* ``frames`` uint8 ``[T, S*C, H, W]``: T RGB frames, S sub-windows of C channels each, sub-window major
  (channels ``s*C .. s*C + C - 1`` are sub-window ``s``, oldest first); S = 1 by default. Chunked one frame
  per chunk, gzip level 1;
* ``t_end_us`` int64 ``[T]``: event-clock end of each frame's window;
* attrs: ``representation``, ``subwindows`` (S), ``channels_per_subwindow`` (C), ``sensor_size`` (W, H),
  ``frame_size`` (W, H), ``event_offset_us``, the representation's own parameters and whatever the stage
  adds (event counts, flags; see :mod:`.stage`).

Root attrs: ``user``, ``n_recordings``, ``failures`` (JSON ``{recording_id: reason}`` of the recordings
that got no group) and the run's options.

The layout of the channels is read from the attrs, never inferred from the shape: a reader that only saw
``[T, 6, H, W]`` could not tell two sub-windows of RGB from six voxel bins.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from ..errors import InputFileError
from ..fileio import open_hdf5_for_reading

#: attrs every group carries besides the representation's own (the reader refuses a group without them)
LAYOUT_ATTRS = ("representation", "subwindows", "channels_per_subwindow", "sensor_size", "event_offset_us")


@dataclass
class EventFrames:
    """One recording's event frames and what they mean.

    ``frames`` is a numpy array or, from :func:`read_event_frames` on an open file, the h5py dataset
    itself (read slices of it; a recording at sensor size does not fit in memory at once). ``attrs`` holds
    every group attribute, including the typed fields below.
    """

    recording_id: str
    frames: np.ndarray | h5py.Dataset  # uint8 [T, S*C, H, W]
    t_end_us: np.ndarray  # int64 [T]
    representation: str
    subwindows: int
    channels_per_subwindow: int
    sensor_size: tuple[int, int]  # (W, H)
    event_offset_us: int
    attrs: dict = field(default_factory=dict)

    @property
    def n_frames(self) -> int:
        return int(self.frames.shape[0])

    @property
    def frame_size(self) -> tuple[int, int]:
        """(W, H) of the stored frames."""
        return int(self.frames.shape[3]), int(self.frames.shape[2])

    def subwindow_view(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Frames ``start:stop`` as ``[n, S, C, H, W]`` (sub-windows in time order)."""
        block = np.asarray(self.frames[start:stop])
        n, _, height, width = block.shape
        return block.reshape(n, self.subwindows, self.channels_per_subwindow, height, width)

    def group_attrs(self) -> dict:
        """The attrs as written: ``attrs`` with the typed fields and the frame size."""
        return {**self.attrs, "representation": self.representation, "subwindows": int(self.subwindows),
                "channels_per_subwindow": int(self.channels_per_subwindow),
                "sensor_size": np.asarray(self.sensor_size, dtype=np.int64),
                "frame_size": np.asarray(self.frame_size, dtype=np.int64),
                "event_offset_us": int(self.event_offset_us)}


def create_event_group(h5: h5py.File, recording_id: str, t_end_us: np.ndarray, subwindows: int, channels: int,
                       height: int, width: int) -> h5py.Dataset:
    """Create group ``recording_id`` with ``t_end_us`` and an empty ``frames`` dataset to fill frame by frame.

    Finish the group with :func:`write_event_attrs`; :func:`write_event_frames` does both for frames in memory.
    """
    group = h5.create_group(recording_id)
    shape = (len(t_end_us), subwindows * channels, height, width)
    frames = group.create_dataset("frames", shape=shape, dtype=np.uint8, chunks=(1,) + shape[1:],
                                  compression="gzip", compression_opts=1)
    group.create_dataset("t_end_us", data=np.asarray(t_end_us, dtype=np.int64))
    return frames


def write_event_attrs(group: h5py.Group, record: EventFrames) -> None:
    """Write the record's attrs on its group (after checking they agree with the stored frames)."""
    frames = group["frames"]
    if frames.shape[1] != record.subwindows * record.channels_per_subwindow:
        raise ValueError(f"{record.recording_id}: {frames.shape[1]} channels stored, but S={record.subwindows} "
                         f"x C={record.channels_per_subwindow}")
    group.attrs.update(record.group_attrs())


def write_event_frames(h5: h5py.File, record: EventFrames) -> None:
    """Write one recording's whole group from frames in memory."""
    frames = np.asarray(record.frames, dtype=np.uint8)
    dataset = create_event_group(h5, record.recording_id, record.t_end_us, record.subwindows,
                                 record.channels_per_subwindow, frames.shape[2], frames.shape[3])
    if frames.shape != dataset.shape:
        raise ValueError(f"{record.recording_id}: frames {frames.shape} do not match t_end_us and S*C "
                         f"{dataset.shape}")
    dataset[...] = frames
    write_event_attrs(h5[record.recording_id], record)


def write_events_root(h5: h5py.File, user: str, n_recordings: int, failures: dict[str, str], options: dict) -> None:
    """Root attrs of an events file."""
    h5.attrs.update({**options, "user": user, "n_recordings": int(n_recordings),
                     "failures": json.dumps(failures, sort_keys=True)})


def open_events_file(path: str | Path) -> h5py.File:
    """Open an events file for reading; a missing or unreadable file is an :class:`InputFileError`."""
    return open_hdf5_for_reading(path, "events file")


def read_event_frames(h5: h5py.File, recording_id: str) -> EventFrames:
    """The record of one recording of an open events file; ``frames`` stays the (lazy) h5py dataset.

    A missing group, missing layout attrs, or a shape that disagrees with them is an
    :class:`InputFileError` naming the file and the recording.
    """
    path = h5.filename
    if recording_id not in h5:
        failures = read_event_failures(h5)
        reason = f" (the events stage failed on it: {failures[recording_id]})" if recording_id in failures else ""
        raise InputFileError(path, f"no group for recording {recording_id}{reason}")
    group = h5[recording_id]
    missing = [name for name in ("frames", "t_end_us") if name not in group]
    missing += [f"attr {name}" for name in LAYOUT_ATTRS if name not in group.attrs]
    if missing:
        raise InputFileError(path, f"{recording_id} lacks {', '.join(missing)} (not written by the events stage)")
    frames, attrs = group["frames"], dict(group.attrs)
    subwindows, channels = int(attrs["subwindows"]), int(attrs["channels_per_subwindow"])
    if frames.ndim != 4 or frames.shape[1] != subwindows * channels or frames.dtype != np.uint8:
        raise InputFileError(path, f"{recording_id}/frames is {frames.dtype} {frames.shape}, expected uint8 "
                                   f"[T, {subwindows}*{channels}, H, W] from its attrs")
    t_end_us = group["t_end_us"][()]
    if t_end_us.shape != (frames.shape[0],):
        raise InputFileError(path, f"{recording_id}/t_end_us has shape {t_end_us.shape}, expected "
                                   f"({frames.shape[0]},)")
    sensor = tuple(int(v) for v in attrs["sensor_size"])
    return EventFrames(recording_id, frames, t_end_us, str(attrs["representation"]), subwindows, channels,
                       (sensor[0], sensor[1]), int(attrs["event_offset_us"]), attrs)


def read_event_failures(h5: h5py.File) -> dict[str, str]:
    """``{recording_id: reason}`` of the recordings the events stage could not convert."""
    return json.loads(h5.attrs.get("failures", "{}"))
