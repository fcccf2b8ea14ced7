"""EVT 3.0 word-level checks for the writer's tests: the vector grammar and a decoder with the HAL's rules.

Both are written from OpenEB's HAL ``EVT3Decoder`` (``hal/cpp/include/metavision/hal/decoders/evt3/
evt3_decoder.h`` with its default ``BasicCheckValidator``, OpenEB 5.1.1) in plain Python, independently of
the project's numba decoder and of the writer, so that a file that passes them is one the Metavision SDK
reads as written. They are slow (a Python loop per word) and meant for files of at most a few 100k words.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from facemorphic.events.raw import EVENT_DTYPE, TRIGGER_DTYPE, RawReader

ADDR_Y, ADDR_X, VECT_BASE_X, VECT_12, VECT_8, TIME_LOW, TIME_HIGH, EXT_TRIGGER = 0x0, 0x2, 0x3, 0x4, 0x5, 0x6, 0x8, 0xA
OTHERS, CONTINUED_12 = 0xE, 0xF
_GROUP = (VECT_12, VECT_12, VECT_8)


def raw_words(path: str | Path) -> np.ndarray:
    """The 16-bit words after the RAW header of ``path``."""
    return np.fromfile(path, dtype="<u2", offset=RawReader(path).header_bytes)


def vector_grammar_violations(words: np.ndarray, width: int) -> list[str]:
    """Every place where ``words`` break the vector grammar a Prophesee sensor follows.

    The grammar: a ``VECT_BASE_X`` at a 32-pixel-aligned x, followed by one or more complete groups
    ``VECT_12, VECT_12, VECT_8`` (each chained group covers the next 32 pixels), each group inside the
    sensor width; no ``VECT_12`` / ``VECT_8`` anywhere else. Returns readable messages, empty when the
    stream obeys it.
    """
    kinds = (np.asarray(words) >> 12).tolist()
    payloads = (np.asarray(words) & 0x7FF).tolist()
    problems: list[str] = []
    position = None  # index in _GROUP of the next expected word inside a group, None outside a group
    group_x = -1  # first x of the group in progress or of the next chained one
    chain_open = False  # the previous word closed a group: a VECT_12 here starts the chained next group
    for index, kind in enumerate(kinds):
        if position is not None:
            if kind == _GROUP[position]:
                position += 1
                if position == len(_GROUP):
                    position, chain_open = None, True
                    group_x += 32
                continue
            problems.append(f"word {index}: type {kind:#x} inside a vector group that expects {_GROUP[position]:#x}")
            position = None
        if kind == VECT_12 and chain_open:
            position = 1
            if group_x + 32 > width:
                problems.append(f"word {index}: chained vector group at x {group_x} passes the width {width}")
            chain_open = False
            continue
        chain_open = False
        if kind == VECT_BASE_X:
            group_x = payloads[index]
            if group_x % 32:
                problems.append(f"word {index}: VECT_BASE_X at x {group_x}, not a multiple of 32")
            if group_x + 32 > width:
                problems.append(f"word {index}: vector group at x {group_x} passes the width {width}")
            position = 0
        elif kind in (VECT_12, VECT_8):
            problems.append(f"word {index}: {'VECT_12' if kind == VECT_12 else 'VECT_8'} outside a vector group")
    if position is not None:
        problems.append(f"end of data inside a vector group (expects {_GROUP[position]:#x})")
    return problems


def decode_hal_rules(words: np.ndarray, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """Decode ``words`` word by word the way the HAL's ``EVT3Decoder`` does; return (events, triggers).

    The rules that matter for vectors: a ``VECT_12`` takes the next two words as the second 12-bit and
    the 8-bit mask *whatever their type*, emits the 32-pixel mask at the current base only when a
    ``VECT_BASE_X`` was seen since the last rejected group and the block fits the width, then advances
    the base by 32; a ``VECT_8`` (or ``VECT_BASE_X``, ``TIME_LOW``, ...) outside that position only
    updates decoder state and emits nothing. Rows are the whole ``EVT_ADDR_Y`` payload and events
    on rows >= height are dropped. Time: loop + ``TIME_HIGH`` (a drop of >= 2048 steps is a
    24-bit wrap, a new high resets the low part) + ``TIME_LOW``. Monitoring words (``OTHERS``) swallow a
    following ``CONTINUED_12, CONTINUED_12, CONTINUED_4`` triple.
    """
    kinds = (np.asarray(words) >> 12).tolist()
    contents = (np.asarray(words) & 0xFFF).tolist()
    events: list[tuple[int, int, int, int]] = []
    triggers: list[tuple[int, int, int]] = []
    y = base = 0  # base keeps the polarity in bit 11, as the HAL's state word does
    high = low = loop = 0
    is_cd = is_valid = has_vect_base = False
    n = len(kinds)
    i = 0
    while i < n:
        kind, content = kinds[i], contents[i]
        t = (loop << 24) | (high << 12) | low
        if kind == ADDR_X:
            if is_valid:
                events.append((t, content & 0x7FF, y, content >> 11))
            i += 1
        elif kind == VECT_12:
            if i + 3 > n:
                break  # the HAL waits for the rest of the group, which never comes
            if is_valid:
                x0 = base & 0xF7FF  # the HAL's NOT_POLARITY_MASK
                if not has_vect_base or x0 + 32 > width:
                    has_vect_base = False
                else:
                    mask = contents[i] | (contents[i + 1] << 12) | ((contents[i + 2] & 0xFF) << 24)
                    events.extend((t, x0 + bit, y, (base >> 11) & 1) for bit in range(32) if mask >> bit & 1)
                base += 32
            i += 3
        elif kind == TIME_HIGH:
            if high >= 2048 + content:
                loop += 1
            if high != content:
                low = 0
            high = content
            i += 1
        elif kind == EXT_TRIGGER:
            triggers.append((t, (content >> 8) & 0xF, content & 1))
            i += 1
        elif kind == OTHERS:
            if i + 4 > n:
                break
            i += 4 if kinds[i + 1] == CONTINUED_12 else 1
        else:
            if kind == ADDR_Y:
                y = content  # with the system-type bit 11, as the HAL keeps it: such rows are dropped
            elif kind == VECT_BASE_X:
                base, has_vect_base = content, True
            elif kind == TIME_LOW:
                low = content
            is_cd = True if kind == ADDR_Y else (False if kind == 1 else is_cd)
            is_valid = is_cd and y < height
            i += 1
    return np.array(events, EVENT_DTYPE), np.array(triggers, TRIGGER_DTYPE)
