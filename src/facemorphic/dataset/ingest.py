"""The ingest stage: probe discovered recordings into manifest rows and rejects, merge, split.

The ingest stage runs in two steps so that the DAG reruns as little as possible:

1. :func:`ingest_user` probes one user's recordings (RGB: frame count, rate, size, per-frame times;
   RAW: format, sensor size and the first event time, which needs only the start of the file decoded)
   and gives that user's manifest rows (``results/manifest/{user}.csv``, no split column) and rejects.
   Adding a recording to one user reruns that user only.
2. :func:`merge_manifests` joins the per-user files, assigns the train/test split and writes
   ``results/manifest.csv`` and ``results/rejects.csv``. Changing the split settings reruns this cheap
   step and what reads the split, never the per-user probes.

``event_offset_us`` is the event-clock time of RGB time zero; ``offset_source`` says where it came from.
A sync CSV with columns ``recording_id,event_offset_us`` gives it per recording (``sync.csv`` in a user's
folder is read automatically; more files can be given; source ``sync_csv``). Otherwise ``sync`` decides:

* ``first_event`` (default): the time of the first event (event time zero is the first event, as
  Metavision's time shifting does). Nothing ties that event to the first RGB frame, so the source is
  ``first_event_guess`` and the log says the offset is a guess.
* ``triggers``: the RGB camera's strobe drives the event camera's trigger input; RGB frame k is aligned
  with the k-th rising trigger edge (:mod:`facemorphic.events.triggers`), the offset is the first edge
  (source ``triggers``), and the row records ``trigger_count`` (rising edges in the RAW) and
  ``sync_drift_us_max`` (max |(rgb_k - rgb_0) - (edge_k - edge_0)|). Fewer edges than RGB frames rejects
  the recording with the reason. These two columns are -1 for rows not synchronised by triggers.

The manifest's definition and its reader/writer are in :mod:`.manifest`, which probes nothing, so the
stages that read it never import the probes.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Iterable

import pandas as pd
from tqdm import tqdm

from ..errors import FacemorphicError, InputFileError
from .layout import Rejection, discover_user
from .manifest import MANIFEST_COLUMNS, PER_USER_COLUMNS, REJECT_COLUMNS, read_manifest, read_rejects
from .splits import assign_splits

log = logging.getLogger(__name__)


def parse_sync_csv(path: str | Path) -> tuple[dict[str, int], dict[str, str]]:
    """Read one sync CSV (columns ``recording_id,event_offset_us``): ``(offsets, bad_rows)``.

    ``bad_rows`` maps each recording whose ``event_offset_us`` is empty or not a whole number to the reason,
    so the caller can reject exactly those recordings and keep the rest. A file that cannot be read or
    lacks a column is an :class:`InputFileError` naming it.
    """
    path = Path(path)
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except Exception as exc:  # pandas raises parser, decoding and OS errors of many classes
        raise InputFileError(path, f"cannot read sync CSV: {exc}") from None
    missing = {"recording_id", "event_offset_us"} - set(table.columns)
    if missing:
        raise InputFileError(path, f"sync CSV lacks column(s) {sorted(missing)}")
    offsets: dict[str, int] = {}
    bad_rows: dict[str, str] = {}
    for line, (rid, text) in enumerate(zip(table["recording_id"], table["event_offset_us"]), start=2):
        rid = str(rid).strip()
        offset = _whole_number(text)
        if offset is None:
            bad_rows[rid] = f"{path} line {line}: event_offset_us {text!r} is not a whole number of microseconds"
        else:
            offsets[rid] = offset
    return offsets, bad_rows


def _whole_number(text: str) -> int | None:
    """``text`` as an int ("12", " -3 ", "12.0"), or None when it is empty, fractional or not a number."""
    text = str(text).strip()
    try:
        return int(text)
    except ValueError:
        pass
    try:
        value = float(text)
    except ValueError:
        return None
    return int(value) if math.isfinite(value) and value.is_integer() else None


def read_sync_csv(paths: Iterable[str | Path]) -> dict[str, int]:
    """Read sync CSVs given for the whole dataset into ``{recording_id: offset}``.

    Any bad row is an :class:`InputFileError` naming the file, line and value: these files are named
    explicitly in the config, so the run stops before probing anything.
    """
    offsets: dict[str, int] = {}
    for path in paths:
        found, bad_rows = parse_sync_csv(path)
        if bad_rows:
            first = next(iter(bad_rows.values()))
            raise InputFileError(path, f"{len(bad_rows)} bad row(s), first: {first.split(': ', 1)[1]}")
        offsets.update(found)
    return offsets


#: How ingest finds ``event_offset_us`` without a sync CSV (module docstring).
SYNC_MODES = ("first_event", "triggers")


def _probe_pair(cand):
    """(RGB info, RAW info) of one candidate, or the :class:`Rejection` naming the file that failed."""
    from ..events.raw import probe_raw
    from ..video.probe import probe_rgb

    probed = []
    for label, path, probe in (("RGB", cand.rgb_path, probe_rgb), ("RAW", cand.raw_path, probe_raw)):
        try:
            probed.append(probe(path))
        except InputFileError as exc:
            return Rejection(cand.user, cand.recording_id, exc.path, f"{label}: {exc.reason}")
        except OSError as exc:  # unreadable (permissions, I/O error): the probes raise it from open()
            return Rejection(cand.user, cand.recording_id, str(path), f"{label}: cannot read: {exc.strerror or exc}")
    return tuple(probed)


def ingest_user(
    root: str | Path,
    user: str,
    sync_offsets: dict[str, int] | None = None,
    progress: bool = True,
    sync: str = "first_event",
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Discover and probe one user's recordings.

    Returns ``(rows, rejects)``: the manifest rows without the split (columns ``PER_USER_COLUMNS``) and
    the rejections (columns ``REJECT_COLUMNS``). A recording whose RGB or RAW cannot be probed, or (with
    ``sync="triggers"``) whose RAW has fewer rising trigger edges than RGB frames, is rejected with the
    reason; the others are kept.
    """
    from ..events.triggers import TRIGGER_OFFSET_SOURCE, read_trigger_edges, sync_to_triggers

    if sync not in SYNC_MODES:
        raise FacemorphicError(f"option 'sync': {sync!r} is not one of {list(SYNC_MODES)}")

    root = Path(root)
    candidates, rejections = discover_user(root, user)
    offsets = dict(sync_offsets or {})
    bad_offsets: dict[str, str] = {}
    user_sync = root / user / "sync.csv"
    if user_sync.is_file():
        try:
            found, bad_offsets = parse_sync_csv(user_sync)
            offsets.update(found)
        except InputFileError as exc:
            # Unknown which recordings it would re-time: none of them may go on with a guessed offset.
            rejections.append(Rejection(user, "", exc.path, exc.reason))
            bad_offsets = {c.recording_id: f"{exc.path} cannot be used: {exc.reason}" for c in candidates}

    rows = []
    for cand in tqdm(candidates, desc=f"ingest {user}", unit="rec", disable=not progress, leave=False):
        if cand.recording_id in bad_offsets:
            rejections.append(Rejection(user, cand.recording_id, str(user_sync),
                                        f"sync: {bad_offsets[cand.recording_id]}"))
            continue
        probed = _probe_pair(cand)
        if isinstance(probed, Rejection):
            rejections.append(probed)
            continue
        rgb, raw = probed
        trigger_count = drift_us_max = -1
        if cand.recording_id in offsets:
            offset, source = offsets[cand.recording_id], "sync_csv"
        elif sync == "triggers":
            try:
                edges = read_trigger_edges(cand.raw_path)
                synced = sync_to_triggers(rgb.times_s, edges, cand.raw_path)
            except InputFileError as exc:
                rejections.append(Rejection(user, cand.recording_id, exc.path, f"RAW: {exc.reason}"))
                continue
            offset, source = synced.event_offset_us, TRIGGER_OFFSET_SOURCE
            trigger_count, drift_us_max = synced.trigger_count, synced.drift_us_max
            log.info("%s: synchronised by %d rising trigger edges, RGB/trigger drift up to %d us",
                     cand.recording_id, trigger_count, drift_us_max)
        elif raw.first_event_us is None:
            rejections.append(Rejection(user, cand.recording_id, str(cand.raw_path), "RAW: file holds no events"))
            continue
        else:
            offset, source = int(raw.first_event_us), "first_event_guess"
            log.warning("%s: event_offset_us %d is a guess (the first event's time; no sync.csv entry, sync "
                        "'first_event'): event and RGB frames may be misaligned", cand.recording_id, offset)
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
                "trigger_count": trigger_count,
                "sync_drift_us_max": drift_us_max,
            }
        )
    for rej in rejections:
        log.warning("rejected %s: %s", rej.path, rej.reason)
    log.info("user %s: %d recordings, %d rejections", user, len(rows), len(rejections))
    manifest = pd.DataFrame(rows, columns=PER_USER_COLUMNS)
    rejects = pd.DataFrame([r.as_row() for r in rejections], columns=REJECT_COLUMNS)
    return manifest, rejects


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
    reject_frames = [read_rejects(p) for p in user_rejects]
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
