"""Build, write and read the data-quality table ``results/quality.csv``.

One row per recording of the manifest and one per rejected file or recording (``status`` ``rejected``,
with the ingest's reason), so every file of the dataset is accounted for in one place. For the recordings
that went through the pipeline the row gathers what the stages only left in HDF5 attributes or logs:

* RGB: frames, dropped frame numbers (gaps in the JPEG indices or the video timestamps, from the probe),
  decode errors (from the landmarks stage, which decodes every frame: PyAV exceptions plus libav error
  messages, so concealed damage counts);
* events: format, how the sensor geometry was decided (a RAW header's ``format``/``geometry`` line, or a
  guess from the sensor or plugin name), how the time offset was decided (manifest ``offset_source``), the
  event span against the RGB span, the fraction of RGB frames whose window lies outside the recorded
  events (``n_empty_frames`` of the events file), a RAW cut inside a word;
* landmarks: valid and interpolated fractions; fit: median residual in pixels over the valid frames.

The per-user files are read through their stages' readers. :func:`train_decision` applies the
:class:`~facemorphic.quality.options.QualityOptions` thresholds; the shards stage reads the result with
:func:`read_quality` and keeps the recordings with ``train_ok`` false out, with the reason.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import h5py
import numpy as np
import pandas as pd

from ..dataset.manifest import read_manifest, read_rejects
from ..errors import InputFileError
from ..events.io import open_events_file, read_event_failures, read_event_frames
from ..fileio import write_csv_atomic
from ..fitting.io import open_coefficients_file, read_recording_fit
from ..landmarks.io import open_landmarks_file, read_track_group
from .options import QualityOptions

log = logging.getLogger(__name__)

#: Columns of results/quality.csv, in order, and what each holds.
QUALITY_SCHEMA = {
    "recording_id": "str: the recording (empty for a rejected file that names none)",
    "user": "str",
    "task": "str: au, free or reading (empty when rejected)",
    "au": "int: the AU for task au, 0 otherwise",
    "split": "str: train or test (empty when rejected)",
    "status": "str: ok (went through every stage), failed (a stage could not use it) or rejected (at ingest)",
    "path": "str: the rejected file, or the RAW file",
    "rgb_frames": "int: frames in the RGB stream",
    "rgb_dropped_frames": "int: frame numbers missing from the RGB stream",
    "rgb_dropped_indices": "str: those frame numbers, as ranges (3;7-9)",
    "rgb_decode_errors": "int: PyAV decode exceptions plus libav error messages while decoding",
    "event_format": "str: EVT3, EVT2 or DAT",
    "geometry_source": "str: how the sensor size was decided (format, geometry, width/height, sensor generation)",
    "offset_source": "str: how event_offset_us was decided (first_event or sync_csv)",
    "event_offset_us": "int",
    "rgb_span_s": "float: RGB duration",
    "event_span_s": "float: last minus first event time",
    "empty_event_fraction": "float: RGB frames whose event window lies outside the recorded events",
    "raw_truncated": "bool: the RAW data ends inside a word",
    "landmark_valid_fraction": "float: frames with valid landmarks (detected or interpolated)",
    "landmark_interpolated_fraction": "float: frames whose landmarks were interpolated",
    "fit_residual_median_px": "float: median fit residual over the valid frames (NaN when none)",
    "flags": "str: anomalies that do not keep the recording out of training, '; '-separated",
    "train_ok": "bool: the recording may be used for training",
    "reason": "str: why not (the rejection or the failed threshold), empty when train_ok",
}
QUALITY_COLUMNS = list(QUALITY_SCHEMA)
TEXT_COLUMNS = ("recording_id", "user", "task", "split", "status", "path", "rgb_dropped_indices", "event_format",
                "geometry_source", "offset_source", "flags", "reason")
INTEGER_COLUMNS = ("au", "rgb_frames", "rgb_dropped_frames", "rgb_decode_errors", "event_offset_us")
MANIFEST_NEEDS = ("recording_id", "user", "task", "au", "split", "rgb_path", "raw_path", "rgb_frames",
                  "duration_s", "event_offset_us", "event_format", "offset_source")


def compact_ranges(numbers) -> str:
    """``[3, 7, 8, 9]`` -> ``"3;7-9"``: dropped frame numbers readable in one cell."""
    parts, numbers = [], sorted(int(n) for n in numbers)
    start = previous = None
    for n in numbers + [None]:
        if start is not None and (n is None or n != previous + 1):
            parts.append(str(start) if start == previous else f"{start}-{previous}")
            start = None
        if n is not None and start is None:
            start = n
        previous = n
    return ";".join(parts)


def _open_per_user(path: Path, opener, cache: dict):
    """An open per-user HDF5 file, or the InputFileError saying why it cannot be opened (kept per path)."""
    if path not in cache:
        try:
            cache[path] = opener(path)
        except InputFileError as exc:
            cache[path] = exc
    return cache[path]




def _failure(handle: h5py.File, recording_id: str, stage: str) -> str:
    failures = json.loads(handle.attrs.get("failures", "{}")) if stage != "events" else read_event_failures(handle)
    reason = failures.get(recording_id, "no group for the recording")
    return f"{stage}: {reason}"


def _media_columns(row) -> tuple[dict, list[str]]:
    """Probe-level facts about the RGB stream and the RAW header (dropped frames, geometry source)."""
    from ..events.raw import probe_raw
    from ..video.probe import probe_rgb

    values, problems = {}, []
    try:
        info = probe_rgb(row.rgb_path)
        values.update(rgb_dropped_frames=len(info.dropped_frames),
                      rgb_dropped_indices=compact_ranges(info.dropped_frames))
    except (InputFileError, OSError) as exc:
        problems.append(f"RGB probe: {exc}")
    try:
        values["geometry_source"] = probe_raw(row.raw_path).geometry_source
    except (InputFileError, OSError) as exc:
        problems.append(f"RAW probe: {exc}")
    return values, problems


def _missing(handle, recording_id: str, stage: str, failures: list[str]) -> bool:
    """Whether one stage's file lacks the recording (the file did not open, or has no group for it); the
    reason is appended to ``failures``."""
    if isinstance(handle, InputFileError):
        failures.append(f"{stage}: {handle}")
        return True
    if recording_id not in handle:
        failures.append(_failure(handle, recording_id, stage))
        return True
    return False


def recording_row(row, events, landmarks, coefficients) -> dict:
    """The quality values of one manifest row; ``events``/``landmarks``/``coefficients`` are that user's
    open files, or the :class:`InputFileError` that stopped them from opening."""
    values = {"recording_id": row.recording_id, "user": row.user, "task": row.task, "au": int(row.au),
              "split": row.split, "path": row.raw_path, "rgb_frames": int(float(row.rgb_frames)),
              "event_format": row.event_format, "offset_source": row.offset_source,
              "event_offset_us": int(row.event_offset_us), "rgb_span_s": float(row.duration_s)}
    media, failures = _media_columns(row)
    values.update(media)
    rid = row.recording_id
    if not _missing(events, rid, "events", failures):
        record = read_event_frames(events, rid)
        first, last = int(record.attrs["first_event_us"]), int(record.attrs["last_event_us"])
        values.update(event_span_s=(last - first) / 1e6 if first >= 0 else 0.0,
                      empty_event_fraction=int(record.attrs["n_empty_frames"]) / max(record.n_frames, 1),
                      raw_truncated=bool(record.attrs["truncated"]))
    if not _missing(landmarks, rid, "landmarks", failures):
        group = landmarks[rid]
        track = read_track_group(group)
        n = max(len(track.valid), 1)
        values.update(landmark_valid_fraction=float(track.valid.sum()) / n,
                      landmark_interpolated_fraction=float(track.interpolated.sum()) / n,
                      rgb_decode_errors=int(group.attrs.get("n_decode_errors", 0)))
    if not _missing(coefficients, rid, "fit", failures):
        fit = read_recording_fit(coefficients, rid)
        residuals = fit.residual_px[fit.valid]
        values["fit_residual_median_px"] = float(np.median(residuals)) if len(residuals) else float("nan")
    values["status"] = "failed" if failures else "ok"
    values["reason"] = "; ".join(failures)
    return values


def train_decision(row: dict, options: QualityOptions) -> tuple[bool, str, str]:
    """``(train_ok, reason, flags)`` of one quality row: the thresholds that keep a recording out of
    training, and the anomalies that are only shown."""
    flags = []
    if row.get("rgb_dropped_frames"):
        flags.append(f"{row['rgb_dropped_frames']} RGB frame(s) dropped ({row['rgb_dropped_indices']})")
    if row.get("geometry_source") == "sensor generation":
        flags.append("sensor size guessed from the sensor/plugin name (header gives no geometry)")
    if row.get("raw_truncated"):
        flags.append("RAW data ends inside a word (file truncated)")
    if row["status"] != "ok":
        return False, row["reason"], "; ".join(flags)
    reasons = []
    if row["empty_event_fraction"] > options.max_empty_event_fraction:
        reasons.append(f"{row['empty_event_fraction']:.0%} of the event frames are empty (RAW shorter than the "
                       f"RGB stream or offset wrong; max {options.max_empty_event_fraction:.0%})")
    if row["landmark_valid_fraction"] < options.min_valid_landmark_fraction:
        reasons.append(f"{row['landmark_valid_fraction']:.1%} of the frames have valid landmarks "
                       f"(min {options.min_valid_landmark_fraction:.1%})")
    if row["rgb_decode_errors"] > options.max_rgb_decode_errors:
        reasons.append(f"{row['rgb_decode_errors']} RGB decode error(s) (max {options.max_rgb_decode_errors})")
    return not reasons, "; ".join(reasons), "; ".join(flags)


def build_quality_table(manifest_path: str | Path, rejects_path: str | Path, events_dir: str | Path,
                        landmarks_dir: str | Path, coefficients_dir: str | Path,
                        options: QualityOptions) -> pd.DataFrame:
    """The quality table of every manifest recording and every rejection (columns :data:`QUALITY_COLUMNS`)."""
    manifest = read_manifest(manifest_path, MANIFEST_NEEDS)
    rejects = read_rejects(rejects_path)
    rows = []
    cache: dict = {}
    try:
        for row in manifest.sort_values("recording_id").itertuples(index=False):
            user = row.user
            values = recording_row(
                row,
                _open_per_user(Path(events_dir) / f"{user}.h5", open_events_file, cache),
                _open_per_user(Path(landmarks_dir) / f"{user}.h5", open_landmarks_file, cache),
                _open_per_user(Path(coefficients_dir) / f"{user}.h5", open_coefficients_file, cache),
            )
            values["train_ok"], values["reason"], values["flags"] = train_decision(values, options)
            rows.append(values)
    finally:
        for handle in cache.values():
            if isinstance(handle, h5py.File):
                handle.close()
    for reject in rejects.itertuples(index=False):
        rows.append({"recording_id": reject.recording_id, "user": reject.user, "status": "rejected",
                     "path": reject.path, "train_ok": False, "reason": f"rejected at ingest: {reject.reason}"})
    table = pd.DataFrame(rows, columns=QUALITY_COLUMNS)
    for column in INTEGER_COLUMNS:  # whole numbers stay whole beside the empty cells of rejected rows
        table[column] = table[column].astype("Int64")
    for row in table[~table["train_ok"].astype(bool)].itertuples(index=False):
        log.warning("%s (%s): not for training: %s", row.recording_id or "-", row.path, row.reason)
    return table


def write_quality(table: pd.DataFrame, path: str | Path) -> None:
    """Write the table atomically, columns in :data:`QUALITY_COLUMNS` order."""
    write_csv_atomic(table[QUALITY_COLUMNS], path)


def read_quality(path: str | Path) -> pd.DataFrame:
    """Read a quality table; a missing or foreign file (lacking ``recording_id``, ``train_ok``, ``reason``)
    is an :class:`InputFileError` naming it. ``train_ok`` comes back as bool, empty text cells as ''."""
    path = Path(path)
    try:
        table = pd.read_csv(path, dtype={column: str for column in TEXT_COLUMNS})
    except FileNotFoundError:
        raise InputFileError(path, "quality table does not exist") from None
    except Exception as exc:  # pandas raises parser and decoding errors of many classes
        raise InputFileError(path, f"cannot read quality table: {exc}") from None
    missing = {"recording_id", "train_ok", "reason"} - set(table.columns)
    if missing:
        raise InputFileError(path, f"quality table lacks column(s) {sorted(missing)}")
    for column in TEXT_COLUMNS:
        if column in table.columns:
            table[column] = table[column].fillna("")
    flags = table["train_ok"].astype(str).str.lower()
    if not flags.isin(["true", "false"]).all():
        raise InputFileError(path, "quality table: train_ok holds values other than True/False")
    table["train_ok"] = flags == "true"
    return table
