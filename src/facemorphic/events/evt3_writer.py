"""EVT 3.0 encoder: write event streams as Prophesee RAW files that the Metavision SDK decodes exactly.

Written from Prophesee's public "EVT 3.0 Format" page and the rules of OpenEB's HAL decoder
(``hal/cpp/include/metavision/hal/decoders/evt3/evt3_decoder.h``; no existing encoder fitted: evt3 and
evlib only decode, and faery's writer uses a word layout that the Metavision SDK decoded only partly).
The words, and the way they are grouped, are the ones a real sensor emits:

* ``EVT_TIME_HIGH`` for *every* 4096 us step from the first event's time on, the way a camera emits one
  per period even when idle. Consecutive time-high words never jump, so every decoder's 24-bit
  loop detection (a wrap is a drop of nearly the full range) sees each wrap; a stream whose first event
  is later than 2^24 us starts its time highs at 0 so the loop count is reconstructed too;
* ``EVT_TIME_LOW`` whenever the lower 12 bits change, and after every ``TIME_HIGH`` before the next
  event (so decoders that do not reset the low part on a new time high still agree);
* ``EVT_ADDR_Y`` when the row changes;
* vectors only as whole groups ``VECT_BASE_X, VECT_12, VECT_12, VECT_8`` covering the 32 pixels of a
  32-pixel-aligned block (zero masks allowed), a group for the next block chained directly after the
  previous ``VECT_8`` without a new base: the HAL reads a ``VECT_12`` as the start of such a group
  (it takes the next two words as masks whatever they are, and advances the base by 32), drops a lone
  ``VECT_8``, and drops a group whose block passes the sensor width. A Gen4.1 sensor emits only
  this (every base is 32-aligned, every group complete, up to three chained). A block becomes a group
  only when that takes fewer words than one ``EVT_ADDR_X`` per event (at least
  :data:`MIN_VECTOR_EVENTS` events, :data:`MIN_CHAINED_VECTOR_EVENTS` when chained), and only for events
  that are consecutive in the input with the same time, row and polarity and increasing x, because a
  group decodes in increasing x; every other event is one ``EVT_ADDR_X``;
* external triggers as ``EXT_TRIGGER`` words at their time.

The header carries ``% facemorphic_evt3_writer <WRITER_VERSION>`` (:func:`read_writer_version`) so
files from the first writer, whose ``BASE,8`` / ``BASE,12`` groups the HAL misread, are recognisable
(they have no such line). Decoding the output gives back exactly the input events, in the input order
(tests check this with the project's reader, evt3, evlib and a decoder following the HAL's rules).
Events must be sorted by time (non-decreasing).
"""

from __future__ import annotations

from pathlib import Path

import numba as nb
import numpy as np

from ..errors import InputFileError
from ..fileio import atomic_path
from .raw import EVENT_DTYPE, TRIGGER_DTYPE, RawReader

#: Largest sensor the format can address (11-bit coordinates).
MAX_SENSOR_SIDE = 2048
_TIME_LOOP = 1 << 24
#: Version written in the ``% facemorphic_evt3_writer`` header line; 2 = whole 32-pixel vector groups.
WRITER_VERSION = 2
_VERSION_KEY = "facemorphic_evt3_writer"
#: Pixels covered by one ``VECT_BASE_X, VECT_12, VECT_12, VECT_8`` group (12 + 12 + 8).
VECTOR_SPAN = 32
#: Fewest events of one block written as a new group: its 4 words are then fewer than one ADDR_X per event.
MIN_VECTOR_EVENTS = 5
#: Fewest events of one block written as a group chained after the previous block's group (3 words).
MIN_CHAINED_VECTOR_EVENTS = 4

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
def _encode(ev_t, ev_x, ev_y, ev_p, tr_t, tr_id, tr_p, width, state, out):
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
        # the run of events sharing (t, y, p) with strictly increasing x, cut into aligned 32-px blocks
        end = i + 1
        while end < n_ev and ev_t[end] == t and ev_y[end] == y and ev_p[end] == p and ev_x[end] > ev_x[end - 1]:
            end += 1
        chain_base = np.int64(-1)  # x the HAL's base has advanced to after this run's last group, -1 if none
        k = i
        while k < end:
            base = np.int64(ev_x[k]) & ~np.int64(VECTOR_SPAN - 1)
            stop = k + 1
            while stop < end and np.int64(ev_x[stop]) < base + VECTOR_SPAN:
                stop += 1
            chained = base == chain_base
            worth_a_group = stop - k >= (MIN_CHAINED_VECTOR_EVENTS if chained else MIN_VECTOR_EVENTS)
            if worth_a_group and base + VECTOR_SPAN <= width:
                if not chained:
                    out[n] = 0x3000 | (p << 11) | base
                    n += 1
                mask = np.int64(0)
                for m in range(k, stop):
                    mask |= np.int64(1) << (np.int64(ev_x[m]) - base)
                out[n] = 0x4000 | (mask & 0xFFF)
                out[n + 1] = 0x4000 | ((mask >> 12) & 0xFFF)
                out[n + 2] = 0x5000 | ((mask >> 24) & 0xFF)
                n += 3
                chain_base = base + VECTOR_SPAN
            else:
                for m in range(k, stop):
                    out[n] = 0x2000 | (p << 11) | ev_x[m]
                    n += 1
                chain_base = -1
            k = stop
        i = end
    return n


def _header(width: int, height: int) -> bytes:
    return (f"% evt 3.0\n% format EVT3;height={height};width={width}\n% geometry {width}x{height}\n"
            f"% integrator_name facemorphic\n% {_VERSION_KEY} {WRITER_VERSION}\n% end\n").encode("ascii")


def read_writer_version(path: str | Path) -> int | None:
    """Version of the facemorphic writer that wrote the RAW file at ``path``, from its header.

    None for files written by anything else, and for files of the first writer (version 1, before the
    header line existed), whose vector words the Metavision SDK misreads; re-encode those.
    """
    value = RawReader(path).header.get(_VERSION_KEY)
    if value is None:
        return None
    if not value.isdigit():
        raise InputFileError(path, f"header line '% {_VERSION_KEY} {value}' holds no integer version")
    return int(value)


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
                    np.ascontiguousarray(triggers["p"], dtype=np.int64), self.width, self._state, out)
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


__all__ = ["EVENT_DTYPE", "WRITER_VERSION", "Evt3Writer", "read_writer_version", "write_evt3"]
