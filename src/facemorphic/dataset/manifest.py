"""The manifest file (``results/manifest.csv``, and ``results/manifest/{user}.csv`` without ``split``)
and the rejects file: their definition, reader and writer (docs/ARCHITECTURE.md, manifest).

One row per recording. Every stage after ingest reads the manifest through :func:`read_manifest`, with
the columns it needs and usually a ``user`` filter. This module probes nothing and imports no other stage,
so the import graph runs one way, in pipeline order: the probing is in :mod:`.ingest`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import pandas as pd

from ..errors import InputFileError
from ..fileio import write_csv_atomic

#: Columns of results/manifest.csv, in order, and what each holds.
MANIFEST_SCHEMA = {
    "recording_id": "str: {user}_{folder}_{repetition}, unique",
    "user": "str: the user folder's name",
    "task": "str: au, free or reading",
    "au": "int: the AU number for task au, 0 otherwise",
    "repetition": "int",
    "sentence": "str: the read sentence (task reading), empty otherwise",
    "rgb_path": "str: video file or JPEG folder",
    "raw_path": "str: Prophesee RAW file",
    "split": "str: train or test (merged manifest only)",
    "rgb_frames": "int: frames in the RGB stream",
    "rgb_fps": "float",
    "rgb_width": "int",
    "rgb_height": "int",
    "event_width": "int: sensor width",
    "event_height": "int: sensor height",
    "duration_s": "float: RGB duration",
    "event_offset_us": "int: event-clock time of RGB time zero",
    "event_format": "str: EVT3, EVT2 or DAT",
    "offset_source": "str: sync_csv, triggers (RGB frame k = rising trigger edge k) or first_event_guess",
    "trigger_count": "int: rising trigger edges in the RAW (offset_source triggers), else -1",
    "sync_drift_us_max": "int: max |(rgb_k - rgb_0) - (edge_k - edge_0)| in us (offset_source triggers), else -1",
}
MANIFEST_COLUMNS = list(MANIFEST_SCHEMA)
#: the per-user manifests have every column but the split
PER_USER_COLUMNS = [c for c in MANIFEST_COLUMNS if c != "split"]
#: read as text whatever they look like (ids and sentences of digits stay strings)
TEXT_COLUMNS = {"recording_id": str, "user": str, "task": str, "sentence": str, "rgb_path": str, "raw_path": str,
                "split": str, "event_format": str, "offset_source": str}

REJECT_COLUMNS = ["user", "recording_id", "path", "reason"]


def _read_table(path: Path, what: str, required: Iterable[str], **read_csv) -> pd.DataFrame:
    """A CSV with the ``required`` columns; a missing, unreadable or incomplete file names itself."""
    try:
        table = pd.read_csv(path, keep_default_na=False, **read_csv)
    except FileNotFoundError:
        raise InputFileError(path, f"{what} does not exist") from None
    except Exception as exc:
        raise InputFileError(path, f"cannot read {what}: {exc}") from None
    missing = set(required) - set(table.columns)
    if missing:
        raise InputFileError(path, f"{what} lacks column(s) {sorted(missing)}")
    return table


def read_manifest(path: str | Path, required: Iterable[str] = PER_USER_COLUMNS,
                  user: str | None = None) -> pd.DataFrame:
    """Read a manifest CSV (whole or per user) with the column types the stages expect.

    A missing file, an unreadable CSV, a missing one of the ``required`` columns, a repeated
    ``recording_id``, or no row of ``user`` (when given) is an :class:`InputFileError` naming the file.
    """
    path = Path(path)
    table = _read_table(path, "manifest", required, dtype=TEXT_COLUMNS, na_values={"rgb_frames": [""]})
    if "recording_id" in table.columns:
        repeated = sorted(set(table.loc[table["recording_id"].duplicated(), "recording_id"]))
        if repeated:
            raise InputFileError(path, f"manifest repeats recording_id(s) {repeated[:5]}")
    if user is not None:
        table = table[table["user"] == user]
        if table.empty:
            raise InputFileError(path, f"manifest has no recording of user {user!r}")
    return table


def write_manifest(table: pd.DataFrame, path: str | Path) -> None:
    """Write a manifest atomically: the merged columns when ``split`` is there, else the per-user ones."""
    columns = MANIFEST_COLUMNS if "split" in table.columns else PER_USER_COLUMNS
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise ValueError(f"manifest table lacks column(s) {missing}")
    write_csv_atomic(table[columns], path)


def read_rejects(path: str | Path) -> pd.DataFrame:
    """Read a rejects CSV (columns :data:`REJECT_COLUMNS`, all text)."""
    return _read_table(Path(path), "rejects file", REJECT_COLUMNS, dtype=str)[REJECT_COLUMNS]


def write_rejects(table: pd.DataFrame, path: str | Path) -> None:
    """Write a rejects table atomically, columns in :data:`REJECT_COLUMNS` order."""
    write_csv_atomic(table[REJECT_COLUMNS], path)

