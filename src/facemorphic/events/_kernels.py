"""Numba decode loops for EVT 3.0 and EVT 2.0 words, written from Prophesee's public format pages.

Both loops are resumable: all decoder state lives in a small ``int64`` array (:data:`STATE_LEN`
entries, indices below), so a file is decoded in fixed-size blocks of words with bounded memory and a
block boundary can fall anywhere, even between a ``VECT_BASE_X`` and its vector words. Each call decodes
words until the input is exhausted or an output buffer could overflow, and returns how many words it
consumed, so the caller simply calls again with the rest.

Semantics (identical to Prophesee's reference decoders on every file in ``../shared/data/events``):

* nothing is emitted before the first ``TIME_HIGH`` word; every other word before it is skipped;
* EVT 3.0 time is ``time_high << 12 | time_low``; a ``TIME_HIGH`` resets the low part to 0; a
  ``TIME_LOW`` word replaces the low part even when that moves the clock back (stray TIME_LOW words in
  real files are kept as the reference keeps them, not clamped);
* the time-high counter (12 bits in EVT 3.0, 28 bits in EVT 2.0) wraps: a new time high that is lower
  than the previous one by at least the full range minus 10 time-high steps adds one loop period;
* ``VECT_12`` / ``VECT_8`` emit one event per set bit at ``base_x + bit`` and then advance ``base_x`` by
  12 / 8 whatever the mask;
* external triggers (type 0xA) carry the current time, an id and an edge value;
* events whose x or y fall outside the sensor are dropped and counted (state ``S_OUTSIDE``), never
  clamped; monitoring / ERC / CONTINUED / OTHERS words are skipped.
"""

from __future__ import annotations

import numba as nb
from numba.cpython.unsafe.numbers import trailing_zeros
import numpy as np

# Indices into the int64 decoder state array.
S_TIME_BASE = 0  # current time high in microseconds, loop periods included
S_TIME = 1  # current event time
S_N_LOOP = 2  # sum of loop periods added so far
S_Y = 3  # EVT3 current ADDR_Y
S_BASE_X = 4  # EVT3 current vector base x
S_POL = 5  # EVT3 current vector polarity
S_TIME_SET = 6  # 1 once the first TIME_HIGH was seen
S_OUTSIDE = 7  # events dropped because x >= width or y >= height
STATE_LEN = 8

EVT3_MAX_TIME_BASE = ((1 << 12) - 1) << 12
EVT3_TIME_LOOP = EVT3_MAX_TIME_BASE + (1 << 12)
EVT3_LOOP_THRESHOLD = 10 << 12
EVT2_MAX_TIME_BASE = ((1 << 28) - 1) << 6
EVT2_TIME_LOOP = EVT2_MAX_TIME_BASE + (1 << 6)
EVT2_LOOP_THRESHOLD = 10 << 6


def new_state() -> np.ndarray:
    """A fresh decoder state (no time base yet)."""
    return np.zeros(STATE_LEN, dtype=np.int64)


@nb.njit(cache=True, nogil=True, inline="always")
def _time_high_evt3(state, time_high):
    new_base = (np.int64(time_high) << 12) + state[S_N_LOOP]
    base = state[S_TIME_BASE]
    if state[S_TIME_SET] == 1 and base > new_base and base - new_base >= EVT3_MAX_TIME_BASE - EVT3_LOOP_THRESHOLD:
        new_base += EVT3_TIME_LOOP
        state[S_N_LOOP] += EVT3_TIME_LOOP
    state[S_TIME_BASE] = new_base
    state[S_TIME] = new_base
    state[S_TIME_SET] = 1


@nb.njit(cache=True, nogil=True)
def decode_evt3(words, state, width, height, out, trig):
    """Decode EVT 3.0 ``words`` (uint16) into ``out`` (EVENT_DTYPE records) and ``trig`` (TRIGGER_DTYPE).

    Returns ``(n_words_consumed, n_events, n_triggers)``. Stops early, at a word boundary, when fewer than
    12 event slots or no trigger slot remain.
    """
    n_words = words.shape[0]
    cap = out.shape[0] - 12
    trig_cap = trig.shape[0]
    n = 0
    nt = 0
    i = 0
    time = state[S_TIME]
    y = state[S_Y]
    base_x = state[S_BASE_X]
    pol = state[S_POL]
    outside = state[S_OUTSIDE]
    if state[S_TIME_SET] == 0:
        while i < n_words:
            w = words[i]
            i += 1
            if (w >> 12) == 0x8:
                _time_high_evt3(state, w & 0xFFF)
                time = state[S_TIME]
                break
    while i < n_words:
        if n > cap or nt >= trig_cap:
            break
        w = words[i]
        i += 1
        kind = w >> 12
        if kind == 0x0:  # EVT_ADDR_Y
            y = w & 0x7FF
        elif kind == 0x2:  # EVT_ADDR_X
            x = w & 0x7FF
            if x < width and y < height:
                out[n].t = time
                out[n].x = x
                out[n].y = y
                out[n].p = (w >> 11) & 1
                n += 1
            else:
                outside += 1
        elif kind == 0x3:  # VECT_BASE_X
            base_x = w & 0x7FF
            pol = (w >> 11) & 1
        elif kind == 0x4 or kind == 0x5:  # VECT_12 / VECT_8
            mask = np.int64(w & 0xFFF) if kind == 0x4 else np.int64(w & 0xFF)
            span = 12 if kind == 0x4 else 8
            if y < height:
                while mask != 0:
                    bit = trailing_zeros(mask)
                    mask &= mask - 1
                    x = base_x + bit
                    if x < width:
                        out[n].t = time
                        out[n].x = x
                        out[n].y = y
                        out[n].p = pol
                        n += 1
                    else:
                        outside += 1
            else:
                while mask != 0:
                    mask &= mask - 1
                    outside += 1
            base_x += span
        elif kind == 0x6:  # EVT_TIME_LOW
            time = state[S_TIME_BASE] + (w & 0xFFF)
        elif kind == 0x8:  # EVT_TIME_HIGH
            _time_high_evt3(state, w & 0xFFF)
            time = state[S_TIME]
        elif kind == 0xA:  # EXT_TRIGGER
            trig[nt].t = time
            trig[nt].id = (w >> 8) & 0xF
            trig[nt].p = w & 1
            nt += 1
    state[S_TIME] = time
    state[S_Y] = y
    state[S_BASE_X] = base_x
    state[S_POL] = pol
    state[S_OUTSIDE] = outside
    return i, n, nt


@nb.njit(cache=True, nogil=True, inline="always")
def _time_high_evt2(state, time_high):
    new_base = (np.int64(time_high) << 6) + state[S_N_LOOP]
    base = state[S_TIME_BASE]
    if state[S_TIME_SET] == 1 and base > new_base and base - new_base >= EVT2_MAX_TIME_BASE - EVT2_LOOP_THRESHOLD:
        new_base += EVT2_TIME_LOOP
        state[S_N_LOOP] += EVT2_TIME_LOOP
    state[S_TIME_BASE] = new_base
    state[S_TIME] = new_base
    state[S_TIME_SET] = 1


@nb.njit(cache=True, nogil=True)
def decode_evt2(words, state, width, height, out, trig):
    """Decode EVT 2.0 ``words`` (uint32); same contract as :func:`decode_evt3`."""
    n_words = words.shape[0]
    cap = out.shape[0]
    trig_cap = trig.shape[0]
    n = 0
    nt = 0
    i = 0
    outside = state[S_OUTSIDE]
    while i < n_words:
        if n >= cap or nt >= trig_cap:
            break
        w = words[i]
        i += 1
        kind = w >> 28
        if kind == 0x8:  # EVT_TIME_HIGH
            _time_high_evt2(state, w & 0xFFFFFFF)
            continue
        if state[S_TIME_SET] == 0:
            continue
        if kind <= 0x1:  # CD_OFF / CD_ON
            x = (w >> 11) & 0x7FF
            y = w & 0x7FF
            if x < width and y < height:
                out[n].t = state[S_TIME_BASE] + ((w >> 22) & 0x3F)
                out[n].x = x
                out[n].y = y
                out[n].p = kind
                n += 1
            else:
                outside += 1
        elif kind == 0xA:  # EXT_TRIGGER
            trig[nt].t = state[S_TIME_BASE] + ((w >> 22) & 0x3F)
            trig[nt].id = (w >> 8) & 0x1F
            trig[nt].p = w & 1
            nt += 1
    state[S_OUTSIDE] = outside
    return i, n, nt
