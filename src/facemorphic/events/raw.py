"""Read Prophesee RAW (EVT 3.0, EVT 2.0) and DAT files: header probing and streaming decoding.

A RAW file is a text header of ``% key value`` lines (ended by ``% end`` in recent files, or by the first
byte that is not ``%`` in older ones) followed by little-endian words. The sensor size comes from
``% format EVT3;height=720;width=1280``, else ``% geometry 1280x720``, else the sensor generation or HAL
plugin name (older Gen3 EVT 2.0 files carry no geometry at all: Gen3 / Gen3.1 => 640x480, Gen4 / Gen4.1 /
IMX636 / IMX646 => 1280x720, GenX320 => 320x320).

:class:`RawReader` iterates a file in chunks of events (structured arrays of :data:`EVENT_DTYPE`, stream
order, raw sensor time in microseconds) and external triggers (:data:`TRIGGER_DTYPE`), reading a fixed
number of words at a time, so memory stays bounded whatever the file size. A file that ends inside a word
(an interrupted copy or recording) yields every event before the cut, logs a warning and sets
``reader.truncated``.

DAT files (Prophesee's older ``Event2D`` container: header lines, one byte event type, one byte event
size, then 8-byte records ``uint32 t, uint32 data`` with x = bits 0-13, y = bits 14-27, p = bits 28-31)
are read by a small numpy reader with the same interface.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, NamedTuple

import numpy as np

from ..errors import InputFileError
from . import _kernels

log = logging.getLogger(__name__)

#: Decoded CD events: time in microseconds (raw sensor clock), pixel, polarity (0 OFF, 1 ON).
EVENT_DTYPE = np.dtype([("t", "<i8"), ("x", "<u2"), ("y", "<u2"), ("p", "u1")])
#: External trigger events: time, trigger channel id, edge value (0 falling, 1 rising).
TRIGGER_DTYPE = np.dtype([("t", "<i8"), ("id", "u1"), ("p", "u1")])

#: Words read per block by default (EVT3: 8 MiB of input).
DEFAULT_CHUNK_WORDS = 1 << 22
#: Bytes decoded by :func:`probe_raw` while looking for the first event (more only if none found yet).
PROBE_BYTES = 1 << 16

FORMAT_WORD_BYTES = {"EVT3": 2, "EVT2": 4}

#: Sensor sizes by generation, for headers without ``format``/``geometry`` (order matters: most specific first).
SENSOR_SIZES = (
    ("genx320", (320, 320)),
    ("imx636", (1280, 720)),
    ("imx646", (1280, 720)),
    ("gen41", (1280, 720)),
    ("gen4", (1280, 720)),
    ("gen31", (640, 480)),
    ("gen3", (640, 480)),
    ("evk4", (1280, 720)),
)


@dataclass(frozen=True)
class RawInfo:
    """What a RAW/DAT header (and the first decoded words) say about a recording."""

    path: str
    format: str  # 'EVT3' | 'EVT2' | 'DAT'
    width: int
    height: int
    header_bytes: int  # offset of the first data byte
    first_event_us: int | None  # time of the first CD event the decoder emits; None when there is none
    data_bytes: int  # bytes after the header
    truncated: bool  # the data ends inside a word (or record)
    geometry_source: str  # 'format', 'geometry', 'width/height', 'sensor generation', ...
    header: dict = field(default_factory=dict, repr=False)  # every '% key value' line, in order

    @property
    def sensor_size(self) -> tuple[int, int]:
        """``(width, height)``."""
        return self.width, self.height


class Chunk(NamedTuple):
    """One block of a decoded stream."""

    events: np.ndarray  # EVENT_DTYPE, stream order
    triggers: np.ndarray  # TRIGGER_DTYPE
    time_base_us: int  # no event after this chunk is earlier than this time (the decoder's time high)


def _sensor_from_names(header: dict[str, str]) -> tuple[int, int] | None:
    """Sensor size from ``sensor_generation`` / ``plugin_name`` etc., for headers without geometry."""
    generation = header.get("sensor_generation", "").strip()
    names = [("gen" + generation.replace(".", "")) if generation else ""]
    names += [header.get(k, "") for k in ("plugin_name", "sensor_name", "camera_integrator_name")]
    text = " ".join(names).lower()
    for name, size in SENSOR_SIZES:
        if name in text:
            return size
    return None


#: Longest '% key value' header line accepted (real ones are under 200 bytes); longer means not a header.
MAX_HEADER_LINE_BYTES = 4096
#: Largest header accepted (real ones are under 2 kB); reading stops there whatever the file holds.
MAX_HEADER_BYTES = 1 << 20
#: Largest sensor side a header may declare (EVT 2.0/3.0 addresses hold 11 bits; DAT 14).
MAX_GEOMETRY_SIDE = 1 << 16


def _read_header(path: Path, fh) -> tuple[dict[str, str], int]:
    """Parse '% ' lines; return (key -> value, header length in bytes).

    Reads are bounded (:data:`MAX_HEADER_LINE_BYTES` per line, :data:`MAX_HEADER_BYTES` in all): a file
    whose first byte is '%' but holds no newline for gigabytes must be rejected, not read into memory.
    """
    header: dict[str, str] = {}
    offset = 0
    while True:
        first = fh.read(1)
        if first != b"%":
            fh.seek(offset)
            break
        line = first + fh.readline(MAX_HEADER_LINE_BYTES)
        if len(line) > MAX_HEADER_LINE_BYTES:
            raise InputFileError(path, f"header line at byte {offset} is longer than {MAX_HEADER_LINE_BYTES} bytes "
                                       "(not a RAW/DAT header)")
        if not line.endswith(b"\n"):
            raise InputFileError(path, "file ends inside its '%' header (truncated or not a RAW/DAT file)")
        offset += len(line)
        if offset > MAX_HEADER_BYTES:
            raise InputFileError(path, f"'%' header is longer than {MAX_HEADER_BYTES} bytes (not a RAW/DAT header)")
        text = line[1:].decode("latin-1").strip()
        if text == "end":
            break
        key, _, value = text.partition(" ")
        if key:
            header[key] = value.strip() if key not in header else header[key]
    return header, offset


def _sensor_side(path: Path, field: str, text: str) -> int:
    """A width or height from the header, as a positive integer, or InputFileError naming the field."""
    text = text.strip()
    if not text.isascii() or not text.isdigit():
        raise InputFileError(path, f"header field {field} = {text[:40]!r} is not a positive integer")
    value = int(text)
    if not 0 < value <= MAX_GEOMETRY_SIDE:
        raise InputFileError(path, f"header field {field} = {value} is outside 1..{MAX_GEOMETRY_SIDE}")
    return value


def _parse_format(path: Path, header: dict[str, str]) -> tuple[str, int | None, int | None, str]:
    width = height = None
    source = ""
    fmt = None
    if "format" in header:
        parts = header["format"].split(";")
        fmt = parts[0].strip().upper()
        opts = dict(p.split("=", 1) for p in parts[1:] if "=" in p)
        opts = {k.strip(): v for k, v in opts.items()}
        if "width" in opts or "height" in opts:
            if not ("width" in opts and "height" in opts):
                raise InputFileError(path, "header field 'format' gives only one of width/height: "
                                           f"{header['format']!r}")
            width = _sensor_side(path, "'format' width", opts["width"])
            height = _sensor_side(path, "'format' height", opts["height"])
            source = "format"
    if "evt" in header:
        version = header["evt"].strip()
        fmt_from_evt = {"3.0": "EVT3", "2.0": "EVT2", "2.1": "EVT21", "4.0": "EVT4"}.get(version, f"evt {version}")
        fmt = fmt or fmt_from_evt
    if fmt is None:
        raise InputFileError(path, "header names no event format ('% evt 3.0' or '% format EVT3;...'); not a RAW file")
    if fmt not in FORMAT_WORD_BYTES:
        raise InputFileError(path, f"event format {fmt!r} is not supported (EVT 3.0, EVT 2.0 and DAT are)")
    if width is None and "geometry" in header:
        match = re.fullmatch(r"\s*(\S+?)\s*x\s*(\S+)\s*", header["geometry"])
        if not match:
            raise InputFileError(path, f"header field 'geometry' = {header['geometry'][:40]!r} is not WIDTHxHEIGHT")
        width = _sensor_side(path, "'geometry' width", match[1])
        height = _sensor_side(path, "'geometry' height", match[2])
        source = "geometry"
    return fmt, width, height, source


def _probe_header(path: Path) -> tuple[str, dict, int, int, int, str, int]:
    """Return (format, header, header_bytes, width, height, geometry_source, file_size)."""
    if not path.is_file():
        raise InputFileError(path, "event file does not exist")
    size = path.stat().st_size
    if size == 0:
        raise InputFileError(path, "event file is empty")
    with open(path, "rb") as fh:
        header, offset = _read_header(path, fh)
        if path.suffix.lower() == ".dat" and "evt" not in header and "format" not in header:
            type_size = fh.read(2)
            if len(type_size) < 2:
                raise InputFileError(path, "DAT file ends before its event type/size bytes")
            if type_size[1] != 8:
                raise InputFileError(path, f"DAT event size {type_size[1]} is not supported (8-byte Event2D only)")
            offset += 2
            width, height = (_sensor_side(path, f"'{key}'", header[key]) if header.get(key) else 0
                             for key in [("Width" if "Width" in header else "width"),
                                         ("Height" if "Height" in header else "height")])
            source = "width/height" if width and height else "unknown (DAT without Width/Height)"
            return "DAT", header, offset, width, height, source, size
    fmt, width, height, source = _parse_format(path, header)
    if width is None:
        guessed = _sensor_from_names(header)
        if guessed is None:
            raise InputFileError(path, "header gives no sensor size (no format/geometry line, "
                                       "unknown sensor generation)")
        (width, height), source = guessed, "sensor generation"
    return fmt, header, offset, width, height, source, size


def probe_raw(path: str | Path) -> RawInfo:
    """Read the header and decode only the start of the file to find the first event's time.

    Raises :class:`InputFileError` for a missing or empty file, a header that is not EVT 3.0 / EVT 2.0 /
    DAT, or a file that holds nothing after its header.
    """
    path = Path(path)
    fmt, header, offset, width, height, source, size = _probe_header(path)
    data_bytes = size - offset
    if data_bytes <= 0:
        raise InputFileError(path, "event file holds a header but no event data")
    word = 8 if fmt == "DAT" else FORMAT_WORD_BYTES[fmt]
    probed = (fmt, header, offset, width, height, source, size)
    reader = RawReader(path, chunk_words=PROBE_BYTES // word, _probed=probed)
    first = None
    for chunk in reader.chunks():
        if len(chunk.events):
            first = int(chunk.events["t"][0])
            break
    return RawInfo(str(path), fmt, width, height, offset, first, data_bytes, data_bytes % word != 0, source, header)


class RawReader:
    """Streaming reader of one RAW/DAT file.

    ``chunks()`` yields :class:`Chunk` objects holding at most about ``chunk_words`` events each; after
    a full pass, ``n_events``, ``n_triggers``, ``n_outside`` (events dropped for coordinates outside the
    sensor) and ``truncated`` describe the file.
    """

    def __init__(self, path: str | Path, chunk_words: int = DEFAULT_CHUNK_WORDS, _probed=None):
        self.path = Path(path)
        fmt, header, offset, width, height, source, size = _probed or _probe_header(self.path)
        self.format, self.header, self.header_bytes = fmt, header, offset
        self.width, self.height, self.geometry_source, self.file_size = width, height, source, size
        self.chunk_words = max(int(chunk_words), 64)
        self.n_events = 0
        self.n_triggers = 0
        self.n_outside = 0
        self.truncated = False

    @property
    def sensor_size(self) -> tuple[int, int]:
        return self.width, self.height

    def _word_blocks(self, dtype) -> Iterator[np.ndarray]:
        """Yield successive blocks of whole words; set ``truncated`` on a trailing partial word.

        ``readinto`` on a regular file fills the buffer except at the end of the file, so a partial word
        can only be the file's last bytes.
        """
        itemsize = np.dtype(dtype).itemsize
        buf = np.empty(self.chunk_words * itemsize, dtype=np.uint8)
        with open(self.path, "rb") as fh:
            fh.seek(self.header_bytes)
            while True:
                got = fh.readinto(memoryview(buf))
                whole = got - got % itemsize
                if whole != got:
                    self._mark_truncated(got - whole)
                if whole:
                    yield buf[:whole].view(dtype)
                if got < len(buf):
                    return

    def _mark_truncated(self, extra: int) -> None:
        self.truncated = True
        log.warning("%s: file ends inside a word (%d stray bytes): truncated recording, events before the cut kept",
                    self.path, extra)

    def chunks(self, reuse_buffers: bool = False) -> Iterator[Chunk]:
        """Decode the whole file, one bounded chunk at a time.

        With ``reuse_buffers`` every chunk's events live in one buffer that the next chunk overwrites
        (no allocation, no page faults per chunk): for consumers that use each chunk before asking for the
        next (conversion, frame building, window filtering).
        """
        self.n_events = self.n_triggers = self.n_outside = 0
        self.truncated = False
        if self.format == "DAT":
            yield from self._dat_chunks()
            return
        kernel = _kernels.decode_evt3 if self.format == "EVT3" else _kernels.decode_evt2
        word_dtype = "<u2" if self.format == "EVT3" else "<u4"
        state = _kernels.new_state()
        shared = np.empty(self.chunk_words + 12, EVENT_DTYPE) if reuse_buffers else None
        triggers = np.empty(1024, TRIGGER_DTYPE)
        for words in self._word_blocks(word_dtype):
            pos = 0
            while pos < len(words):
                events = shared if reuse_buffers else np.empty(self.chunk_words + 12, EVENT_DTYPE)
                used, n, nt = kernel(words[pos:], state, self.width, self.height, events, triggers)
                pos += used
                self.n_events += n
                self.n_triggers += nt
                self.n_outside = int(state[_kernels.S_OUTSIDE])
                if not reuse_buffers and 2 * n <= len(events):
                    events = events[:n].copy()  # do not pin a mostly empty buffer
                yield Chunk(events[:n], triggers[:nt].copy(), int(state[_kernels.S_TIME_BASE]))

    def _dat_chunks(self) -> Iterator[Chunk]:
        no_triggers = np.empty(0, TRIGGER_DTYPE)
        for records in self._word_blocks(np.dtype([("t", "<u4"), ("data", "<u4")])):
            data = records["data"]
            x = data & 0x3FFF
            y = (data >> 14) & 0x3FFF
            keep = np.ones(len(data), bool)
            if self.width and self.height:
                keep = (x < self.width) & (y < self.height)
                self.n_outside += int(len(data) - keep.sum())
            events = np.empty(int(keep.sum()), EVENT_DTYPE)
            events["t"] = records["t"][keep]
            events["x"], events["y"] = x[keep], y[keep]
            events["p"] = (data[keep] >> 28) & 0xF
            self.n_events += len(events)
            yield Chunk(events, no_triggers, int(events["t"][-1]) if len(events) else 0)


def read_events(path: str | Path, chunk_words: int = DEFAULT_CHUNK_WORDS) -> tuple[np.ndarray, np.ndarray]:
    """Decode a whole file into memory: ``(events, triggers)``."""
    reader = RawReader(path, chunk_words)
    events, triggers = [], []
    for chunk in reader.chunks():
        events.append(chunk.events)
        triggers.append(chunk.triggers)
    return (np.concatenate(events) if events else np.empty(0, EVENT_DTYPE),
            np.concatenate(triggers) if triggers else np.empty(0, TRIGGER_DTYPE))


def read_window(path: str | Path, t_start_us: int, t_end_us: int,
                chunk_words: int = DEFAULT_CHUNK_WORDS) -> np.ndarray:
    """Events with ``t_start_us <= t < t_end_us``, in stream order.

    Streams from the start of the file (RAW words carry no index to seek by) and stops as soon as the
    decoder's time base passes ``t_end_us``, after which no event of the window can follow.
    """
    reader = RawReader(path, chunk_words)
    parts = []
    for chunk in reader.chunks(reuse_buffers=True):
        t = chunk.events["t"]
        parts.append(chunk.events[(t >= t_start_us) & (t < t_end_us)])
        if reader.format != "DAT" and chunk.time_base_us >= t_end_us:
            break
    return np.concatenate(parts) if parts else np.empty(0, EVENT_DTYPE)
