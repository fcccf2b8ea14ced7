"""EVT 3.0 encoder: write event streams as Prophesee RAW files that every EVT 3.0 decoder reads exactly.

Written from Prophesee's public "EVT 3.0 Format" page (no existing encoder fitted: evt3 and evlib only
decode, and faery's writer uses a word layout that the Metavision SDK decoded only partly). The words
are the ones a real sensor emits:

* ``EVT_TIME_HIGH`` for *every* 4096 us step from the first event's time on, the way a camera emits one
  per period even when idle. Consecutive time-high words never jump, so every decoder's 24-bit
  loop detection (a wrap is a drop of nearly the full range) sees each wrap; a stream whose first event
  is later than 2^24 us starts its time highs at 0 so the loop count is reconstructed too;
* ``EVT_TIME_LOW`` whenever the lower 12 bits change, and after every ``TIME_HIGH`` before the next
  event (so decoders that do not reset the low part on a new time high still agree);
* ``EVT_ADDR_Y`` when the row changes;
* a run of consecutive events (in input order) with the same time, row and polarity and increasing x
  becomes ``VECT_BASE_X`` followed by ``VECT_12`` / ``VECT_8`` masks (``VECT_8`` when the remaining
  events of the run fit in 8 columns), as the sensor's vectorised readout does; a lone event is one
  ``EVT_ADDR_X``;
* external triggers as ``EXT_TRIGGER`` words at their time.

Decoding the output gives back exactly the input events, in the input order (tests check this with
the project's reader, evt3 and evlib). Events must be sorted by time (non-decreasing).
"""

from __future__ import annotations

from pathlib import Path

import numba as nb
import numpy as np

from ..fileio import atomic_path
from .raw import EVENT_DTYPE, TRIGGER_DTYPE

#: Largest sensor the format can address (11-bit coordinates).
MAX_SENSOR_SIDE = 2048
_TIME_LOOP = 1 << 24

# Encoder state indices.
_E_TH = 0  # absolute time-high step (t >> 12) last written, -1 before the first
_E_TIME = 1  # absolute time last made current by TIME_LOW, -1 when a TIME_LOW is due
_E_Y = 2  # last ADDR_Y, -1 before the first
_E_LEN = 3


@nb.njit(cache=True, nogil=True)
def _advance_time(out, n, state, t):
    """Emit TIME_HIGH steps up to ``t >> 12`` and a TIME_LOW for ``t``; return the new word count."""
    target = t >> 12
    th = state[_E_TH]
    if th < 0:
        th = target if target < 4096 else -1
        if th >= 0:
            out[n] = 0x8000 | (th & 0xFFF)
            n += 1
            state[_E_TIME] = -1
    while th < target:
        th += 1
        out[n] = 0x8000 | (th & 0xFFF)
        n += 1
        state[_E_TIME] = -1
    state[_E_TH] = th
    if state[_E_TIME] != t:
        out[n] = 0x6000 | (t & 0xFFF)
        n += 1
        state[_E_TIME] = t
    return n


@nb.njit(cache=True, nogil=True)
def _encode(ev_t, ev_x, ev_y, ev_p, tr_t, tr_id, tr_p, state, out):
    """Encode sorted events and triggers into ``out`` (uint16); return the number of words."""
    n = 0
    i = 0
    j = 0
    n_ev = ev_t.shape[0]
    n_tr = tr_t.shape[0]
    while i < n_ev or j < n_tr:
        if j < n_tr and (i >= n_ev or tr_t[j] <= ev_t[i]):
            n = _advance_time(out, n, state, tr_t[j])
            out[n] = 0xA000 | ((tr_id[j] & 0xF) << 8) | (tr_p[j] & 1)
            n += 1
            j += 1
            continue
        t = ev_t[i]
        y = ev_y[i]
        p = ev_p[i]
        n = _advance_time(out, n, state, t)
        if state[_E_Y] != y:
            out[n] = y & 0x7FF
            n += 1
            state[_E_Y] = y
        # the run of events sharing (t, y, p) with strictly increasing x
        end = i + 1
        while end < n_ev and ev_t[end] == t and ev_y[end] == y and ev_p[end] == p and ev_x[end] > ev_x[end - 1]:
            end += 1
        k = i
        while k < end:
            x0 = np.int64(ev_x[k])
            if k + 1 >= end or np.int64(ev_x[k + 1]) >= x0 + 12:
                out[n] = 0x2000 | (p << 11) | x0
                n += 1
                k += 1
                continue
            out[n] = 0x3000 | (p << 11) | x0
            n += 1
            base = x0
            while k < end and np.int64(ev_x[k]) < base + 12:
                mask = 0
                last = k
                while last < end and np.int64(ev_x[last]) < base + 12:
                    mask |= 1 << (np.int64(ev_x[last]) - base)
                    last += 1
                if mask < 256:
                    out[n] = 0x5000 | mask
                    base += 8
                else:
                    out[n] = 0x4000 | mask
                    base += 12
                n += 1
                while k < end and np.int64(ev_x[k]) < base:
                    k += 1
        i = end
    return n


def _header(width: int, height: int) -> bytes:
    return (f"% evt 3.0\n% format EVT3;height={height};width={width}\n% geometry {width}x{height}\n"
            f"% integrator_name facemorphic\n% end\n").encode("ascii")


class Evt3Writer:
    """Streaming EVT 3.0 writer; use as a context manager, feed time-ordered chunks with :meth:`write`.

    The file appears at ``path`` only when the block ends without error (atomic rename).
    """

    def __init__(self, path: str | Path, width: int, height: int):
        if not (0 < width <= MAX_SENSOR_SIDE and 0 < height <= MAX_SENSOR_SIDE):
            raise ValueError(f"sensor size {width}x{height} outside 1..{MAX_SENSOR_SIDE}")
        self.path = Path(path)
        self.width, self.height = int(width), int(height)
        self._state = np.array([-1, -1, -1], dtype=np.int64)
        self._last_t = -1
        self._atomic = None
        self._fh = None
        self.n_events = 0
        self.n_triggers = 0

    def __enter__(self) -> "Evt3Writer":
        self._atomic = atomic_path(self.path)
        tmp = self._atomic.__enter__()
        self._fh = open(tmp, "wb")
        self._fh.write(_header(self.width, self.height))
        return self

    def __exit__(self, exc_type, exc, tb):
        self._fh.close()
        return self._atomic.__exit__(exc_type, exc, tb)

    def write(self, events: np.ndarray, triggers: np.ndarray | None = None) -> None:
        """Append ``events`` (EVENT_DTYPE-like, sorted by t, not earlier than anything written before)."""
        if self._fh is None:
            raise RuntimeError("Evt3Writer.write called outside its 'with' block")
        events = np.asarray(events)
        triggers = np.empty(0, TRIGGER_DTYPE) if triggers is None else np.asarray(triggers)
        ev_t = np.ascontiguousarray(events["t"], dtype=np.int64)
        tr_t = np.ascontiguousarray(triggers["t"], dtype=np.int64)
        ev_x = np.ascontiguousarray(events["x"], dtype=np.int64)
        ev_y = np.ascontiguousarray(events["y"], dtype=np.int64)
        ev_p = np.ascontiguousarray(events["p"], dtype=np.int64)
        self._check(ev_t, ev_x, ev_y, ev_p, tr_t)
        if not len(ev_t) and not len(tr_t):
            return
        t_max = max(ev_t[-1] if len(ev_t) else 0, tr_t.max() if len(tr_t) else 0)
        t_min = min(ev_t[0] if len(ev_t) else t_max, tr_t.min() if len(tr_t) else t_max)
        th_from = self._state[_E_TH] if self._state[_E_TH] >= 0 else (t_min >> 12 if t_min < _TIME_LOOP else 0)
        capacity = int((t_max >> 12) - th_from + 2 + 4 * len(ev_t) + 3 * len(tr_t) + 16)
        out = np.empty(capacity, dtype=np.uint16)
        n = _encode(ev_t, ev_x, ev_y, ev_p, tr_t, np.ascontiguousarray(triggers["id"], dtype=np.int64),
                    np.ascontiguousarray(triggers["p"], dtype=np.int64), self._state, out)
        self._fh.write(out[:n].astype("<u2", copy=False).tobytes())
        self._last_t = int(t_max)
        self.n_events += len(ev_t)
        self.n_triggers += len(tr_t)

    def _check(self, t, x, y, p, tr_t) -> None:
        for name, times in (("events", t), ("triggers", tr_t)):
            if len(times) == 0:
                continue
            if np.any(np.diff(times) < 0):
                raise ValueError(f"{name} are not sorted by time")
            if times[0] < 0:
                raise ValueError(f"{name} have a negative time {times[0]} us")
            if times[0] < self._last_t:
                raise ValueError(f"{name} start at {times[0]} us, before the {self._last_t} us already written")
        if len(t) and (x.max() >= self.width or y.max() >= self.height or x.min() < 0 or y.min() < 0):
            raise ValueError(f"event coordinates outside the {self.width}x{self.height} sensor")
        if len(t) and (p.min() < 0 or p.max() > 1):
            raise ValueError("polarity must be 0 (OFF) or 1 (ON)")


def write_evt3(path: str | Path, events: np.ndarray, width: int, height: int,
               triggers: np.ndarray | None = None, chunk_events: int = 1 << 22) -> None:
    """Write an in-memory event array (sorted by t) and optional triggers as one EVT 3.0 RAW file."""
    events = np.asarray(events)
    triggers = np.empty(0, TRIGGER_DTYPE) if triggers is None else np.asarray(triggers)
    with Evt3Writer(path, width, height) as writer:
        starts = list(range(0, len(events), chunk_events)) or [0]
        for k, start in enumerate(starts):
            part = events[start:start + chunk_events]
            t_hi = events["t"][starts[k + 1]] if k + 1 < len(starts) else np.iinfo(np.int64).max
            t_lo = part["t"][0] if k else np.iinfo(np.int64).min
            writer.write(part, triggers[(triggers["t"] >= t_lo) & (triggers["t"] < t_hi)])


__all__ = ["EVENT_DTYPE", "Evt3Writer", "write_evt3"]
