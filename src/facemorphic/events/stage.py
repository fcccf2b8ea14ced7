"""The events stage: every recording of one user -> ``results/events/{user}.h5`` (the contract is in
:mod:`.io`; docs/ARCHITECTURE.md, events file).

Per recording (manifest row): the RGB frame times (:func:`facemorphic.video.read_frame_times`) and
``event_offset_us`` give one window per RGB frame (:mod:`.alignment`); the RAW file is streamed through
:class:`.frames.FrameBuilder` and the frames are written as they are finalized, so memory stays bounded.
When the manifest's ``offset_source`` is ``triggers`` (ingest aligned the RGB frames with the RAW's
rising trigger edges), the windows are the trigger edges themselves: they are read again from the RAW
(:func:`.triggers.read_trigger_edges`, decoding only up to edge T + 1) rather than stored, so the manifest
stays one row per recording and the events file always follows the RAW it was drawn from. A first edge
that is not the manifest's ``event_offset_us``, or fewer edges than RGB frames, fails that recording.
The frame size keeps the sensor's aspect ratio (:func:`.frames.event_frame_size`); a set size that does
not fails that recording.

Besides the layout attrs of :mod:`.io`, each group gets: ``window_us`` (the nominal length drawn per
(sub-)window: the median RGB frame period divided by S, or the accumulation time when shorter),
``window_source`` (``triggers`` or ``rgb_times``), ``n_events`` (events drawn into the frames),
``n_events_decoded``, ``n_outside`` (dropped, outside the sensor), ``raw_format``, ``raw_path``, ``first_event_us`` / ``last_event_us`` (-1 when none),
``truncated`` (RAW cut inside a word), ``events_end_before_rgb`` (the stream ends before the last RGB
frame starts: the missing part is empty frames), ``events_start_after_rgb``, ``n_empty_frames``.

A recording that cannot be read is logged and listed in the root attribute ``failures`` and gets no
group; the other recordings are still written.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..dataset.manifest import read_manifest
from ..errors import FacemorphicError
from ..fileio import atomic_path
from .alignment import FrameWindows, rgb_frame_windows, trigger_frame_windows
from .frames import FrameBuilder, event_frame_size
from .io import EventFrames, create_event_group, write_event_attrs, write_events_root
from .options import EventsOptions
from .raw import RawReader
from .triggers import TRIGGER_OFFSET_SOURCE, read_trigger_edges

log = logging.getLogger(__name__)

#: manifest columns this stage reads (and ``offset_source`` when there, for the trigger windows)
MANIFEST_NEEDS = ("recording_id", "user", "raw_path", "rgb_path", "event_offset_us")


@dataclass
class EventsResult:
    """What :func:`run_events` wrote: the recording ids with a group, and ``{recording_id: reason}``."""

    written: list[str] = field(default_factory=list)
    failures: dict[str, str] = field(default_factory=dict)


def trigger_windows(raw_path, n_frames: int, event_offset_us: int, options: EventsOptions) -> FrameWindows:
    """Windows from the RAW's rising trigger edges for ``n_frames`` RGB frames; the first edge must be the
    manifest's ``event_offset_us`` (else the manifest was made from another file or another decoder)."""
    edges = read_trigger_edges(raw_path, max_edges=n_frames + 1)
    if len(edges) < n_frames:
        raise FacemorphicError(f"{raw_path}: {len(edges)} rising trigger edges for {n_frames} RGB frames")
    if edges[0] != event_offset_us:
        raise FacemorphicError(f"{raw_path}: first rising trigger edge at {edges[0]} us, but the manifest's "
                               f"event_offset_us is {event_offset_us}: re-run ingest on this file")
    return trigger_frame_windows(edges, n_frames, options.subwindows, options.accumulation_us)


def write_recording(h5, recording_id: str, raw_path, rgb_times_s: np.ndarray, event_offset_us: int,
                    options: EventsOptions, by_triggers: bool = False) -> EventFrames:
    """Write one recording's group into open HDF5 file ``h5``; return its record (frames: the dataset).

    ``by_triggers``: the windows are the RAW's trigger edges (:func:`trigger_windows`), else the RGB times
    shifted by ``event_offset_us``.
    """
    rep = options.build_representation()
    size = event_frame_size(RawReader(raw_path).sensor_size, options.width, options.height)
    if by_triggers:
        windows = trigger_windows(raw_path, len(rgb_times_s), event_offset_us, options)
    else:
        windows = rgb_frame_windows(rgb_times_s, event_offset_us, options.subwindows, options.accumulation_us)
    builder = FrameBuilder(raw_path, windows, rep, size=size)
    n_frames, subwindows, channels = windows.n_frames, windows.subwindows, rep.channels
    frames = create_event_group(h5, recording_id, windows.frame_ends, subwindows, channels, builder.height,
                                builder.width)
    buffer = np.empty(frames.shape[1:], np.uint8)
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
        "window_us": int(min(options.accumulation_us or period, period // subwindows)),
        "window_source": "triggers" if by_triggers else "rgb_times",
        "n_events": stats.n_events_in_frames,
        "n_events_decoded": stats.n_events_decoded,
        "n_outside": stats.n_outside,
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
    record = EventFrames(recording_id, frames, windows.frame_ends.astype(np.int64), rep.name, subwindows, channels,
                         tuple(builder.reader.sensor_size), int(event_offset_us), attrs)
    write_event_attrs(h5[recording_id], record)
    if attrs["truncated"] or attrs["events_end_before_rgb"] or attrs["events_start_after_rgb"]:
        log.warning("%s: truncated=%s events_end_before_rgb=%s events_start_after_rgb=%s (%d empty frames of %d)",
                    recording_id, attrs["truncated"], attrs["events_end_before_rgb"], attrs["events_start_after_rgb"],
                    n_empty, n_frames)
    return record


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


def run_events(manifest_path: str | Path, out_path: str | Path, options: EventsOptions, user: str | None = None,
               data_root: str | Path | None = None, progress: bool = False) -> EventsResult:
    """Write the event frames of every manifest row (of ``user`` if given) into ``out_path``, atomically.

    Relative ``raw_path`` / ``rgb_path`` values are taken relative to ``data_root`` when given. One bad
    recording never stops the others: it is logged, listed in the result and in the file's ``failures``.
    """
    import h5py

    from ..video import read_frame_times

    manifest = read_manifest(manifest_path, MANIFEST_NEEDS, user=user)
    rep = options.build_representation()
    result = EventsResult()
    rows = list(manifest.itertuples(index=False))
    with atomic_path(out_path) as tmp, h5py.File(tmp, "w") as h5:
        iterator = rows
        if progress:
            from tqdm import tqdm

            # disable=None: a bar only when stderr is a terminal; a redirected log gets the lines below
            iterator = tqdm(rows, desc=Path(out_path).stem, unit="rec", disable=None)
        for row in iterator:
            rid = str(row.recording_id)
            raw_path, rgb_path = _resolve(row.raw_path, data_root), _resolve(row.rgb_path, data_root)
            try:
                started = time.perf_counter()
                times = read_frame_times(rgb_path)
                by_triggers = str(getattr(row, "offset_source", "")) == TRIGGER_OFFSET_SOURCE
                record = write_recording(h5, rid, raw_path, times, int(row.event_offset_us), options, by_triggers)
                result.written.append(rid)
                log.info("%s: %d frames, %d events, %.1f%% empty frames, %.1f s", rid, record.n_frames,
                         record.attrs["n_events"], 100 * record.attrs["n_empty_frames"] / max(record.n_frames, 1),
                         time.perf_counter() - started)
            except Exception as exc:  # one bad recording must not lose the user's other recordings
                if rid in h5:
                    del h5[rid]
                reason = str(exc) if isinstance(exc, (FacemorphicError, OSError, ValueError)) else repr(exc)
                log.error("recording %s (%s) skipped: %s", rid, raw_path, reason)
                result.failures[rid] = reason
        users = sorted(set(manifest["user"]))
        run_attrs = {**rep.attrs(), "subwindows": options.subwindows, "accumulation_us": options.accumulation_us,
                     "width": options.width, "height": options.height}
        write_events_root(h5, users[0] if len(users) == 1 else ",".join(users), len(result.written),
                          result.failures, run_attrs)
    return result
