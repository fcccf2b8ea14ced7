"""RGB/event synchronisation from external trigger edges (the RGB camera's strobe wired to the event
camera's trigger input).

Each RGB exposure makes one pulse on the trigger input, which the event camera stamps on its own clock
(EVT 3.0 / EVT 2.0 ``EXT_TRIGGER`` words, decoded by :mod:`.raw`). The pulse's rising edge (polarity 1)
is taken as the frame time: a strobe pulse rises when the exposure starts, and one edge kind per frame
keeps a pulse from counting twice. RGB frame k is aligned with the k-th rising edge, so the
event-clock time of RGB time zero (the manifest's ``event_offset_us``) is the first rising edge, and the
difference between the RGB timestamps and the edges (``drift``) measures how far the RGB clock and the
event clock disagree over the recording.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputFileError
from .raw import RawReader

#: The trigger edge that marks an RGB frame: 1 = rising (0 = falling).
RGB_STROBE_EDGE = 1
#: The manifest's ``offset_source`` for a recording synchronised by its trigger edges (ingest writes it,
#: the events stage then draws the trigger windows).
TRIGGER_OFFSET_SOURCE = "triggers"


def read_trigger_edges(path: str | Path, max_edges: int | None = None) -> np.ndarray:
    """Event-clock times (int64 microseconds, increasing) of the rising trigger edges in a RAW file.

    Decodes from the start and stops once ``max_edges`` edges are found (None: the whole file). A file
    with triggers on more than one channel is an :class:`InputFileError` (which channel carries the RGB
    strobe cannot be told), and so are edges whose times do not increase (the strobe never fires twice
    in the same microsecond).
    """
    reader = RawReader(path)
    parts, channels, found = [], set(), 0
    for chunk in reader.chunks(reuse_buffers=True):
        if len(chunk.triggers) == 0:
            continue
        channels.update(int(c) for c in np.unique(chunk.triggers["id"]))
        rising = chunk.triggers["t"][chunk.triggers["p"] == RGB_STROBE_EDGE]
        parts.append(rising)
        found += len(rising)
        if max_edges is not None and found >= max_edges:
            break
    if len(channels) > 1:
        raise InputFileError(path, f"external triggers on channels {sorted(channels)}: cannot tell which one "
                                   f"carries the RGB strobe")
    edges = np.concatenate(parts).astype(np.int64) if parts else np.empty(0, np.int64)
    if max_edges is not None:
        edges = edges[:max_edges]
    if np.any(np.diff(edges) <= 0):
        raise InputFileError(path, "rising trigger edge times do not increase")
    return edges


@dataclass(frozen=True)
class TriggerSync:
    """RGB frames aligned with trigger edges."""

    event_offset_us: int  # the first rising edge: event-clock time of RGB time zero
    trigger_count: int  # rising edges in the file
    drift_us_max: int  # max_k |(rgb_k - rgb_0) - (edge_k - edge_0)|, microseconds


def sync_to_triggers(rgb_times_s: np.ndarray, edges_us: np.ndarray, path: str | Path) -> TriggerSync:
    """Align RGB frame k (times in seconds from the first frame) with rising edge k of ``path``.

    Fewer edges than RGB frames is an :class:`InputFileError` naming both counts (frames without an edge
    have no event-clock time). Extra edges after the last frame are allowed: the strobe may run on after
    the RGB recording stops.
    """
    times_us = np.rint(np.asarray(rgb_times_s, dtype=np.float64) * 1e6).astype(np.int64)
    edges = np.asarray(edges_us, dtype=np.int64)
    if len(times_us) == 0:
        raise InputFileError(path, "no RGB frames to align with the triggers")
    if len(edges) < len(times_us):
        raise InputFileError(path, f"{len(edges)} rising trigger edges for {len(times_us)} RGB frames "
                                   f"(sync 'triggers' needs one edge per frame)")
    aligned = edges[:len(times_us)]
    drift = np.abs((times_us - times_us[0]) - (aligned - aligned[0]))
    return TriggerSync(int(aligned[0]), len(edges), int(drift.max()))
