"""The frames a trained run sees, drawn from a new recording by the training pipeline's own code.

Windows: with an RGB stream, one per RGB frame, from the RGB frame times shifted by the event-clock time of
RGB time zero (:func:`facemorphic.events.alignment.rgb_frame_windows`, as the events stage), or the RAW's
rising trigger edges (:func:`~facemorphic.events.alignment.trigger_frame_windows`). Without one, frames at
a fixed rate from the first event to the last, which are the same windows the events stage would draw for
an RGB stream at that rate starting with the first event (ingest's ``first_event`` guess).

Frames: :class:`facemorphic.events.frames.FrameBuilder` streams the RAW into the representation at the
events stage's frame size (:func:`~facemorphic.events.frames.event_frame_size`), and each block goes
through the shards stage's crop, resize and 3-channel mapping (:mod:`facemorphic.shards.frames`), so
memory holds one block of full-size frames at a time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np

from ..errors import FacemorphicError, InputFileError
from ..events.alignment import FrameWindows, rgb_frame_windows, trigger_frame_windows
from ..events.frames import FrameBuilder, event_frame_size
from ..events.options import EventsOptions
from ..events.raw import RawReader, probe_raw
from ..events.triggers import read_trigger_edges
from ..shards.frames import events_to_three_channels, resize_frames

#: event frames finalised, resized and mapped per block (the shards stage's EVENT_BLOCK)
FRAME_BLOCK = 32


def event_time_span(raw_path: str | Path) -> tuple[int, int]:
    """Times of the first and the latest event in a RAW/DAT file (one decoding pass; the header does not
    say how long a recording lasts, and the fixed-rate windows must cover all of it)."""
    first = probe_raw(raw_path).first_event_us
    if first is None:
        raise InputFileError(raw_path, "file holds no events")
    last = first
    for chunk in RawReader(raw_path).chunks(reuse_buffers=True):
        if len(chunk.events):
            last = max(last, int(chunk.events["t"].max()))
    return first, last


def fixed_rate_windows(raw_path: str | Path, fps: float, options: EventsOptions) -> FrameWindows:
    """Frames at ``fps`` from the first event until one covers the latest event."""
    first, last = event_time_span(raw_path)
    period_us = 1e6 / fps
    n_frames = int((last - first) // period_us) + 1
    while int(np.rint(n_frames / fps * 1e6)) + first <= last:  # rounding of the frame starts
        n_frames += 1
    times = np.arange(n_frames) / fps
    return rgb_frame_windows(times, first, options.subwindows, options.accumulation_us)


def rgb_windows(raw_path: str | Path, rgb_times_s: np.ndarray, options: EventsOptions, sync: str,
                event_offset_us: int | None) -> FrameWindows:
    """One window per RGB frame: shifted by ``event_offset_us`` when given, else by ``sync``."""
    if event_offset_us is None and sync == "triggers":
        edges = read_trigger_edges(raw_path, max_edges=len(rgb_times_s) + 1)
        if len(edges) < len(rgb_times_s):
            raise InputFileError(raw_path, f"{len(edges)} rising trigger edges for {len(rgb_times_s)} RGB frames")
        return trigger_frame_windows(edges, len(rgb_times_s), options.subwindows, options.accumulation_us)
    if event_offset_us is None:
        event_offset_us = probe_raw(raw_path).first_event_us
        if event_offset_us is None:
            raise InputFileError(raw_path, "file holds no events to take RGB time zero from")
    return rgb_frame_windows(rgb_times_s, int(event_offset_us), options.subwindows, options.accumulation_us)


def event_frame_blocks(raw_path: str | Path, windows: FrameWindows, options: EventsOptions,
                       block: int = FRAME_BLOCK) -> Iterator[np.ndarray]:
    """Full-size event frames ``uint8 [n, S*C, H, W]`` in blocks of up to ``block`` RGB frames, in order
    (sub-windows stacked as the events file stores them)."""
    rep = options.build_representation()
    size = event_frame_size(RawReader(raw_path).sensor_size, options.width, options.height)
    builder = FrameBuilder(raw_path, windows, rep, size=size)
    subwindows, channels = windows.subwindows, rep.channels
    buffer = np.empty((block, subwindows * channels, builder.height, builder.width), np.uint8)
    filled = 0
    for j, frame in builder:
        frame_index, sub = divmod(j, subwindows)
        buffer[filled, sub * channels:(sub + 1) * channels] = frame
        if sub == subwindows - 1:
            filled += 1
            if filled == block:
                yield buffer.copy()
                filled = 0
    if filled:
        yield buffer[:filled].copy()


def check_event_layout(options: EventsOptions, representation: str | None, subwindows: int | None,
                       channels: int | None, where: str) -> None:
    """The events options must draw the frames the run was trained on (same representation and S x C)."""
    rep = options.build_representation()
    if representation is None or subwindows is None or channels is None:
        raise FacemorphicError(f"{where}: the run's shards do not record their event layout "
                               "(event_representation, event_subwindows, event_channels_per_subwindow)")
    given = (rep.name, options.subwindows, rep.channels)
    if given != (representation, subwindows, channels):
        raise FacemorphicError(
            f"{where}: the run was trained on {representation} frames with S={subwindows} x C={channels}, but "
            f"the events options draw {given[0]} with S={given[1]} x C={given[2]}: pass the events block the "
            "run's frames were made with")


def model_event_frames(blocks: Iterator[np.ndarray], size: int, crop: str, subwindows: int,
                       channels: int) -> Iterator[np.ndarray]:
    """Each block of event frames as the models' ``uint8 [n, 3, size, size]`` (the shards mapping)."""
    for frames in blocks:
        yield events_to_three_channels(resize_frames(frames, size, crop), subwindows, channels)
