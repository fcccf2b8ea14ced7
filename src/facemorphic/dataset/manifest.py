"""Probe discovered recordings and write the manifest and the rejects.

The ingest stage runs in two steps so that the DAG reruns as little as possible:

1. :func:`ingest_user` probes one user's recordings (RGB: frame count, rate, size, per-frame times;
   RAW: format, sensor size and the first event time, which needs only the start of the file decoded)
   and gives that user's manifest rows (``results/manifest/{user}.csv``, no split column) and rejects.
   Adding a recording to one user reruns that user only.
2. :func:`merge_manifests` joins the per-user files, assigns the train/test split and writes
   ``results/manifest.csv`` and ``results/rejects.csv``. Changing the split settings reruns this cheap
   step and what reads the split, never the per-user probes.

``event_offset_us`` is the event-clock time of RGB time zero. By default it is the time of the first
event (event time zero is the first event, as Metavision's time shifting does); a sync CSV with columns
``recording_id,event_offset_us`` overrides it per recording (``sync.csv`` in a user's folder is read
automatically; more files can be given).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Iterable

import pandas as pd
from tqdm import tqdm

from ..errors import FacemorphicError, InputFileError
from .layout import MANIFEST_COLUMNS, REJECT_COLUMNS, Rejection, discover_user
from .splits import assign_splits

log = logging.getLogger(__name__)

PER_USER_COLUMNS = [c for c in MANIFEST_COLUMNS if c != "split"]


def read_sync_csv(paths: Iterable[str | Path]) -> dict[str, int]:
    """Read sync CSVs (columns ``recording_id,event_offset_us``) into ``{recording_id: offset}``."""
    offsets: dict[str, int] = {}
    for path in paths:
        path = Path(path)
        try:
            table = pd.read_csv(path, dtype={"recording_id": str})
        except Exception as exc:
            raise InputFileError(path, f"cannot read sync CSV: {exc}") from None
        missing = {"recording_id", "event_offset_us"} - set(table.columns)
        if missing:
            raise InputFileError(path, f"sync CSV lacks column(s) {sorted(missing)}")
        if table["event_offset_us"].isna().any():
            raise InputFileError(path, "sync CSV has empty event_offset_us values")
        for rid, offset in zip(table["recording_id"], table["event_offset_us"]):
            offsets[str(rid)] = int(offset)
    return offsets


def ingest_user(
    root: str | Path,
    user: str,
    sync_offsets: dict[str, int] | None = None,
    progress: bool = True,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Discover and probe one user's recordings.

    Returns ``(rows, rejects)``: the manifest rows without the split (columns ``PER_USER_COLUMNS``) and
    the rejections (columns ``REJECT_COLUMNS``). A recording whose RGB or RAW cannot be probed is
    rejected with the reason; the others are kept.
    """
    from ..events.raw import probe_raw
    from ..video.probe import probe_rgb

    root = Path(root)
    candidates, rejections = discover_user(root, user)
    offsets = dict(sync_offsets or {})
    user_sync = root / user / "sync.csv"
    if user_sync.is_file():
        offsets.update(read_sync_csv([user_sync]))

    rows = []
    for cand in tqdm(candidates, desc=f"ingest {user}", unit="rec", disable=not progress, leave=False):
        try:
            rgb = probe_rgb(cand.rgb_path)
        except InputFileError as exc:
            rejections.append(Rejection(user, cand.recording_id, exc.path, f"RGB: {exc.reason}"))
            continue
        try:
            raw = probe_raw(cand.raw_path)
        except InputFileError as exc:
            rejections.append(Rejection(user, cand.recording_id, exc.path, f"RAW: {exc.reason}"))
            continue
        if cand.recording_id in offsets:
            offset, source = offsets[cand.recording_id], "sync_csv"
        elif raw.first_event_us is None:
            rejections.append(Rejection(user, cand.recording_id, str(cand.raw_path), "RAW: file holds no events"))
            continue
        else:
            offset, source = int(raw.first_event_us), "first_event"
        rows.append(
            {
                "recording_id": cand.recording_id,
                "user": user,
                "task": cand.task,
                "au": cand.au,
                "repetition": cand.repetition,
                "sentence": cand.sentence,
                "rgb_path": str(cand.rgb_path),
                "raw_path": str(cand.raw_path),
                "rgb_frames": rgb.n_frames,
                "rgb_fps": round(rgb.fps, 6),
                "rgb_width": rgb.width,
                "rgb_height": rgb.height,
                "event_width": raw.width,
                "event_height": raw.height,
                "duration_s": round(rgb.duration_s, 6),
                "event_offset_us": offset,
                "event_format": raw.format,
                "offset_source": source,
            }
        )
    for rej in rejections:
        log.warning("rejected %s: %s", rej.path, rej.reason)
    log.info("user %s: %d recordings, %d rejections", user, len(rows), len(rejections))
    manifest = pd.DataFrame(rows, columns=PER_USER_COLUMNS)
    rejects = pd.DataFrame([r.as_row() for r in rejections], columns=REJECT_COLUMNS)
    return manifest, rejects


def read_manifest(path: str | Path, required: Iterable[str] = PER_USER_COLUMNS,
                  user: str | None = None) -> pd.DataFrame:
    """Read a manifest CSV (whole or per user) with the column types the stages expect.

    Every stage reads its manifest through here: a missing file, an unreadable CSV, a missing one of the
    ``required`` columns, or no row of ``user`` (when given) is an :class:`InputFileError` naming the file.
    """
    path = Path(path)
    try:
        table = pd.read_csv(path, dtype={"recording_id": str, "user": str, "sentence": str, "split": str},
                            keep_default_na=False, na_values={"rgb_frames": [""]})
    except FileNotFoundError:
        raise InputFileError(path, "manifest does not exist") from None
    except Exception as exc:
        raise InputFileError(path, f"cannot read manifest: {exc}") from None
    missing = set(required) - set(table.columns)
    if missing:
        raise InputFileError(path, f"manifest lacks column(s) {sorted(missing)}")
    if user is not None:
        table = table[table["user"] == user]
        if table.empty:
            raise InputFileError(path, f"manifest has no recording of user {user!r}")
    return table


def merge_manifests(
    user_manifests: Iterable[str | Path],
    user_rejects: Iterable[str | Path],
    protocol: str,
    test_fraction: float,
    seed: int,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Join per-user manifests and rejects, drop duplicate recording ids, and assign the split."""
    frames = [read_manifest(p) for p in user_manifests]
    manifest = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=PER_USER_COLUMNS)
    reject_frames = [pd.read_csv(p, dtype=str, keep_default_na=False) for p in user_rejects]
    rejects = (pd.concat(reject_frames, ignore_index=True) if reject_frames
               else pd.DataFrame(columns=REJECT_COLUMNS))
    duplicated = manifest["recording_id"].duplicated(keep=False)
    if duplicated.any():
        dups = manifest[duplicated]
        extra = pd.DataFrame({"user": dups["user"], "recording_id": dups["recording_id"], "path": dups["raw_path"],
                              "reason": "duplicate recording id across user manifests"})
        rejects = pd.concat([rejects, extra], ignore_index=True)
        manifest = manifest[~duplicated]
    if manifest.empty:
        raise FacemorphicError("no usable recordings: every discovered file was rejected (see rejects.csv)")
    manifest = manifest.sort_values("recording_id", kind="stable").reset_index(drop=True)
    manifest["split"] = assign_splits(manifest, protocol, test_fraction, seed)
    return manifest[MANIFEST_COLUMNS], rejects[REJECT_COLUMNS]
