"""Convert a RAW/DAT file to ``.npy``, ``.csv`` or ``.h5`` events, streaming, without the Metavision SDK.

Times are always microseconds of the raw sensor clock (no shift to zero); polarity is 0 (OFF) / 1 (ON).

* ``.npy``: the dtype of the reference decodes (``t`` int64 us, ``x``/``y`` uint16, ``p`` uint8), stream
  order. The ``.npy`` header is written with a fixed-width shape field first and rewritten with the final
  count, so the file is streamed without knowing the count in advance.
* ``.csv``: a ``t,x,y,p`` header line, one event per line (integers, ``t`` in us).
* ``.h5``: one 1-D dataset per field, ``events/t`` int64 us, ``events/x`` uint16, ``events/y`` uint16,
  ``events/p`` uint8, and the triggers beside them as ``triggers/t`` int64 us, ``triggers/id`` uint8,
  ``triggers/p`` uint8 (chunked, gzip level 1; every ``t`` dataset has the attr ``unit = "us"``); root
  attrs ``format``, ``width``, ``height``, ``source``, ``n_outside``, ``truncated``. This is the layout
  evlib's ``evlib.load_events`` opens (a group ``events`` with ``t, x, y, p``; checked against evlib 0.13.2
  by ``tests/test_events_convert.py``) and the field naming of DSEC's ``events.h5`` (which also holds
  ``t_offset`` and ``ms_to_idx``, not written here). tonic has no reader for a standalone HDF5 event file
  (only its DSEC dataset class, tied to DSEC's folders), and a table of compound records (the previous
  layout) is opened by none of them.
  Metavision's own HDF5 reader needs ``CD/events`` compressed with Prophesee's ECF codec, which cannot be
  written without Prophesee's plugin: Metavision users should read the RAW file itself.

Triggers go beside a ``.npy``/``.csv`` output as ``{stem}.triggers{suffix}`` (dtype ``t, id, p``),
inside the ``.h5``. Outputs are written atomically.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

import numpy as np

from ..errors import FacemorphicError
from ..fileio import atomic_path
from .raw import DEFAULT_CHUNK_WORDS, EVENT_DTYPE, TRIGGER_DTYPE, RawReader

log = logging.getLogger(__name__)

SUFFIXES = (".npy", ".csv", ".h5", ".hdf5")
_NPY_HEADER_BYTES = 128  # magic (8) + header length (2) + padded dict; fits every count up to 10**20


def triggers_path(out: str | Path) -> Path:
    """Where the triggers of a ``.npy`` / ``.csv`` output go."""
    out = Path(out)
    return out.with_name(f"{out.stem}.triggers{out.suffix}")


class _NpyStream:
    def __init__(self, fh, dtype: np.dtype):
        self.fh, self.dtype, self.count = fh, np.dtype(dtype), 0
        self._header(0)

    def _header(self, count: int) -> None:
        descr = np.lib.format.dtype_to_descr(self.dtype)
        text = "{'descr': %r, 'fortran_order': False, 'shape': (%d,), }" % (descr, count)
        body = text.ljust(_NPY_HEADER_BYTES - 10 - 1) + "\n"
        self.fh.seek(0)
        self.fh.write(b"\x93NUMPY\x01\x00" + len(body).to_bytes(2, "little") + body.encode("latin-1"))
        self.fh.seek(0, 2)

    def write(self, array: np.ndarray) -> None:
        self.fh.write(np.ascontiguousarray(array, dtype=self.dtype).tobytes())
        self.count += len(array)

    def close(self) -> None:
        self._header(self.count)


class _CsvStream:
    def __init__(self, fh, names):
        self.fh = fh
        fh.write((",".join(names) + "\n").encode())

    def write(self, array: np.ndarray) -> None:
        if len(array):
            columns = np.column_stack([array[name].astype(np.int64) for name in array.dtype.names])
            np.savetxt(self.fh, columns, fmt="%d", delimiter=",")

    def close(self) -> None:
        pass


class _H5ColumnStream:
    """A record array streamed into group ``name`` as one growing 1-D dataset per field: readers such as
    evlib take column datasets (``events/t``, ``events/x``, ...), not a compound table."""

    def __init__(self, h5, name, dtype):
        group = h5.create_group(name)
        self.columns = {field: group.create_dataset(field, shape=(0,), maxshape=(None,), dtype=dtype[field],
                                                    chunks=(1 << 16,), compression="gzip", compression_opts=1)
                        for field in dtype.names}
        self.columns["t"].attrs["unit"] = "us"

    def write(self, array: np.ndarray) -> None:
        if len(array):
            for field, ds in self.columns.items():
                n = ds.shape[0]
                ds.resize((n + len(array),))
                ds[n:] = array[field]

    def close(self) -> None:
        pass


def convert_raw(raw_path: str | Path, out: str | Path, chunk_words: int = DEFAULT_CHUNK_WORDS,
                progress: bool = False) -> dict:
    """Decode ``raw_path`` into ``out`` (format by suffix); return a summary dict."""
    out = Path(out)
    suffix = out.suffix.lower()
    if suffix not in SUFFIXES:
        raise FacemorphicError(f"{out}: output must end in one of {', '.join(SUFFIXES)}")
    reader = RawReader(raw_path, chunk_words)
    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(atomic_path(out))
        if suffix in (".h5", ".hdf5"):
            import h5py

            h5 = stack.enter_context(h5py.File(tmp, "w"))
            events_out = _H5ColumnStream(h5, "events", EVENT_DTYPE)
            triggers_out = _H5ColumnStream(h5, "triggers", TRIGGER_DTYPE)
        else:
            tmp_trig = stack.enter_context(atomic_path(triggers_path(out)))
            fh = stack.enter_context(open(tmp, "wb"))
            fh_trig = stack.enter_context(open(tmp_trig, "wb"))
            if suffix == ".npy":
                events_out, triggers_out = _NpyStream(fh, EVENT_DTYPE), _NpyStream(fh_trig, TRIGGER_DTYPE)
            else:
                events_out, triggers_out = _CsvStream(fh, EVENT_DTYPE.names), _CsvStream(fh_trig, TRIGGER_DTYPE.names)
        bar = None
        if progress:
            from tqdm import tqdm

            # disable=None: a bar only when stderr is a terminal, so redirected logs get no \r-bar lines
            bar = stack.enter_context(tqdm(unit="ev", unit_scale=True, desc=Path(raw_path).name, disable=None))
        for chunk in reader.chunks(reuse_buffers=True):
            events_out.write(chunk.events)
            triggers_out.write(chunk.triggers)
            if bar is not None:
                bar.update(len(chunk.events))
        events_out.close()
        triggers_out.close()
        summary = {"format": reader.format, "width": reader.width, "height": reader.height,
                   "n_events": reader.n_events, "n_triggers": reader.n_triggers, "n_outside": reader.n_outside,
                   "truncated": reader.truncated, "source": str(raw_path)}
        if suffix in (".h5", ".hdf5"):
            h5.attrs.update({k: v for k, v in summary.items() if k not in ("n_events", "n_triggers")})
    log.info("%s -> %s: %d events, %d triggers (%s %dx%d)%s", raw_path, out, reader.n_events, reader.n_triggers,
             reader.format, reader.width, reader.height, ", TRUNCATED" if reader.truncated else "")
    return summary
