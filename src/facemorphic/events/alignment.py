"""Event-frame windows aligned to RGB frames.

Event frame k covers RGB frame k's interval: from its capture time to the next frame's, mapped into the
event clock with the recording's ``event_offset_us`` (the event-clock time of RGB time zero). The last
RGB frame has no successor, so its window takes the median frame period. Event frames and RGB frames
therefore pair one to one even when the RGB rate jitters. The finer mode splits each interval into S
equal sub-windows (integer microsecond boundaries), the paper's future-work direction (the authors'
scripts sliced 4 ms). An accumulation time shorter than the interval shows only the end of each
window, like Metavision's ``accumulation_time_us`` below the frame period.

When the RGB camera's strobe drives the event camera's trigger input, the trigger edges are the RGB
capture times on the event clock itself: :func:`trigger_frame_windows` takes frame k's window from edge k
to edge k + 1 (:mod:`.triggers` reads the edges), so clock drift between the two cameras cannot shift
the windows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class FrameWindows:
    """Tiled event-clock windows: window j = ``[starts[j], ends[j])``, drawn from ``visible[j]`` on.

    With S sub-windows, window ``j = k * S + s`` is sub-window s of RGB frame k.
    """

    starts: np.ndarray  # int64 [T * S]
    visible: np.ndarray  # int64 [T * S], starts <= visible <= ends
    ends: np.ndarray  # int64 [T * S]; ends[j] == starts[j + 1]
    n_frames: int  # T (RGB frames)
    subwindows: int  # S

    def __len__(self) -> int:
        return len(self.starts)

    @property
    def frame_ends(self) -> np.ndarray:
        """Event-clock end of each RGB frame's window (``t_end_us`` of the events contract)."""
        return self.ends[self.subwindows - 1::self.subwindows]

    @property
    def min_length_us(self) -> int:
        """Shortest non-empty window (1 when all are empty)."""
        lengths = self.ends - self.starts
        positive = lengths[lengths > 0]
        return int(positive.min()) if len(positive) else 1


def rgb_frame_windows(rgb_times_s: np.ndarray, event_offset_us: int, subwindows: int = 1,
                      accumulation_us: int = 0) -> FrameWindows:
    """Windows for RGB frames at ``rgb_times_s`` (seconds from the first frame).

    ``accumulation_us`` > 0 draws only the last ``accumulation_us`` of each (sub-)window; 0 draws all of it.
    """
    times = np.asarray(rgb_times_s, dtype=np.float64)
    if times.ndim != 1 or len(times) == 0:
        raise ValueError("need at least one RGB frame time")
    if np.any(np.diff(times) < 0):
        raise ValueError("RGB frame times decrease")
    if subwindows < 1:
        raise ValueError("subwindows must be >= 1")
    frame_starts = int(event_offset_us) + np.rint(times * 1e6).astype(np.int64)
    period = int(np.rint(np.median(np.diff(times)) * 1e6)) if len(times) > 1 else 33333
    frame_ends = np.append(frame_starts[1:], frame_starts[-1] + max(period, 1))
    return _tiled_windows(frame_starts, frame_ends, subwindows, accumulation_us)


def trigger_frame_windows(edges_us: np.ndarray, n_frames: int, subwindows: int = 1,
                          accumulation_us: int = 0) -> FrameWindows:
    """Windows for ``n_frames`` RGB frames whose capture times are the trigger edges ``edges_us`` (event
    clock, one edge per frame, in order): frame k is ``[edges[k], edges[k + 1])``; the last frame ends at
    the next edge when there is one, else one median edge period after its start.
    """
    edges = np.asarray(edges_us, dtype=np.int64)
    if n_frames < 1:
        raise ValueError("need at least one RGB frame")
    if len(edges) < n_frames:
        raise ValueError(f"{len(edges)} trigger edges for {n_frames} RGB frames")
    if np.any(np.diff(edges) <= 0):
        raise ValueError("trigger edge times do not increase")
    if subwindows < 1:
        raise ValueError("subwindows must be >= 1")
    frame_starts = edges[:n_frames]
    if len(edges) > n_frames:
        last_end = edges[n_frames]
    else:
        last_end = frame_starts[-1] + (int(np.rint(np.median(np.diff(edges)))) if len(edges) > 1 else 33333)
    frame_ends = np.append(frame_starts[1:], last_end)
    return _tiled_windows(frame_starts, frame_ends, subwindows, accumulation_us)


def _tiled_windows(frame_starts: np.ndarray, frame_ends: np.ndarray, subwindows: int,
                   accumulation_us: int) -> FrameWindows:
    """Split each frame's ``[start, end)`` into S equal integer sub-windows (the tiling both builders share)."""
    span = frame_ends - frame_starts
    steps = np.arange(subwindows + 1, dtype=np.int64)
    bounds = frame_starts[:, None] + (span[:, None] * steps[None, :]) // subwindows  # [T, S+1]
    starts = bounds[:, :-1].reshape(-1)
    ends = bounds[:, 1:].reshape(-1)
    visible = np.maximum(starts, ends - accumulation_us) if accumulation_us > 0 else starts.copy()
    return FrameWindows(starts, visible, ends, len(frame_starts), subwindows)


def periodic_windows(t_first_us: int, t_last_us: int, period_us: int) -> FrameWindows:
    """Metavision-style periodic windows ``[ref + kP, ref + (k+1)P)`` with ``ref = P * floor(t_first / P)``,
    covering ``t_last_us``; for converting a RAW file to frames without an RGB stream."""
    ref = (int(t_first_us) // period_us) * period_us
    count = (int(t_last_us) - ref) // period_us + 1
    starts = ref + period_us * np.arange(count, dtype=np.int64)
    return FrameWindows(starts, starts.copy(), starts + period_us, int(count), 1)
