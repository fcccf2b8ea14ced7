"""Build the shards from the manifest, the event frames, the RGB streams and the fitted coefficients.

One sample per AU recording (``task == 'au'``), grouped by the manifest's ``split`` column into
``{out_dir}/{split}/shard-{k}.h5`` with a fixed number of shards per split (recordings assigned round-robin
in recording-id order), so the output file names are known before the data is read, as Snakemake needs.
Each split folder also gets ``index.csv``: every AU recording of that split, its shard, its frame count,
and, for a recording that could not be used, the reason (nothing disappears silently).

Every input is read through its stage's reader: the manifest through
:func:`facemorphic.dataset.manifest.read_manifest`, the event frames through
:func:`facemorphic.events.io.read_event_frames` (their sub-window layout comes from the file and decides
the 3-channel mapping, :mod:`.frames`), the coefficients through
:func:`facemorphic.fitting.io.read_recording_fit`, and, for the ``rgb_face`` stream only, the landmark
tracks through :func:`facemorphic.landmarks.io.read_track_group` (their face boxes give the crop,
:mod:`.face`). The streams are aligned frame by frame (event frame k is RGB frame k, coefficients and
landmarks are per RGB frame); where their lengths differ, the sample keeps the common prefix and the index
says so. A landmark track of another length than the RGB stream never shortens the sample: missing frames
take the nearest face box.
"""

from __future__ import annotations

import contextlib
import json
import logging
from pathlib import Path

from dataclasses import dataclass, field

import h5py
import numpy as np
import pandas as pd
from tqdm import tqdm

from .. import au_class_index
from ..dataset.manifest import read_manifest
from ..errors import FacemorphicError, InputFileError
from ..events.io import open_events_file, read_event_frames
from ..fileio import atomic_path, write_csv_atomic
from ..fitting.io import open_coefficients_file, read_recording_fit
from ..landmarks.io import open_landmarks_file, read_track_group
from ..quality.table import read_quality
from .face import FACE_CROP, FACE_FALLBACK, face_track, square_boxes
from .frames import events_to_three_channels, read_rgb_views, resize_frames
from .io import SHARD_FORMAT, alpha_statistics, write_alpha_stats, write_sample
from .options import ShardsOptions

log = logging.getLogger(__name__)

#: event frames read, resized and mapped per block (bounded memory at sensor resolution)
EVENT_BLOCK = 32
#: manifest columns this stage reads
MANIFEST_NEEDS = ("recording_id", "user", "task", "au", "split", "rgb_path")


@dataclass
class ShardsResult:
    """What :func:`run_shards` wrote: recording ids per split, ``{recording_id: reason}`` of those skipped,
    and the index of every AU recording considered (as in the ``index.csv`` files)."""

    written: dict[str, list[str]] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)
    index: pd.DataFrame = field(default_factory=pd.DataFrame)


def _open_cached(cache: dict, path: Path, opener) -> h5py.File:
    if path not in cache:
        cache[path] = opener(path)
    return cache[path]


def _resolve(path: str, data_root: Path | None) -> Path:
    p = Path(path)
    return p if p.is_absolute() or data_root is None else data_root / p


def face_view(landmarks_file: h5py.File, recording_id: str, margin: float, smoothing_frames: int):
    """The ``rgb_face`` view of one recording for :func:`.frames.read_rgb_views`: a box function over the
    smoothed face track, or ``center`` when the track has no valid face. Returns ``(view, face_crop, note,
    track frames)``; the note says how many frames had no valid face (empty when every frame had one)."""
    if recording_id not in landmarks_file:
        failures = json.loads(landmarks_file.attrs.get("failures", "{}"))
        reason = f" (the landmarks stage failed on it: {failures[recording_id]})" if recording_id in failures else ""
        raise InputFileError(landmarks_file.filename, f"no landmark track for recording {recording_id}{reason}")
    track = read_track_group(landmarks_file[recording_id])
    n_track = len(track)
    smoothed = face_track(track.bbox, track.valid, n_track, smoothing_frames)
    if smoothed is None:
        return "center", FACE_FALLBACK, f"rgb_face: no valid face in the {n_track} landmark frames (center crop)", \
            n_track
    n_valid = int(np.sum(track.valid & np.all(np.isfinite(track.bbox), axis=1)))
    note = "" if n_valid == n_track else \
        f"rgb_face: {n_track - n_valid} of {n_track} frames without a valid face took the interpolated or nearest box"

    def boxes(indices: np.ndarray, height: int, width: int) -> np.ndarray:
        return square_boxes(smoothed[np.minimum(indices, n_track - 1)], margin, height, width)

    return boxes, FACE_CROP, note, n_track


def load_recording(row, events_dir: Path, coefficients_dir: Path, size: int, crop: str, modalities,
                   data_root: Path | None, open_files: dict, landmarks_dir: Path | None = None,
                   face_margin: float = 1.25, face_smoothing_frames: int = 7) -> tuple[dict, dict, str]:
    """Arrays and attrs of one shard sample; raises InputFileError naming what is missing."""
    rid, user = str(row.recording_id), str(row.user)
    arrays, lengths, attrs = {}, {}, {}
    missing_rgb = 0
    notes = []
    if "events" in modalities:
        record = read_event_frames(_open_cached(open_files, events_dir / f"{user}.h5", open_events_file), rid)
        attrs.update(event_representation=record.representation, event_subwindows=record.subwindows,
                     event_channels_per_subwindow=record.channels_per_subwindow,
                     event_channels=record.subwindows * record.channels_per_subwindow)
        # streamed in blocks: sensor-size frames of a long recording would not fit in memory at once
        blocks = [events_to_three_channels(resize_frames(record.frames[i:i + EVENT_BLOCK], size, crop),
                                           record.subwindows, record.channels_per_subwindow)
                  for i in range(0, record.n_frames, EVENT_BLOCK)]
        arrays["events"] = np.concatenate(blocks) if blocks else np.zeros((0, 3, size, size), np.uint8)
        lengths["events"] = record.n_frames
    views = {"rgb": crop} if "rgb" in modalities else {}
    n_track = None
    if "rgb_face" in modalities:
        if landmarks_dir is None:
            raise ValueError("the rgb_face modality needs the landmarks folder (--landmarks-dir)")
        landmarks = _open_cached(open_files, landmarks_dir / f"{user}.h5", open_landmarks_file)
        views["rgb_face"], attrs["face_crop"], face_note, n_track = face_view(landmarks, rid, face_margin,
                                                                              face_smoothing_frames)
        notes.append(face_note)
    if views:
        frames, missing_rgb = read_rgb_views(_resolve(row.rgb_path, data_root), size, views)
        arrays.update(frames)
        lengths.update({name: len(array) for name, array in frames.items()})
        if n_track is not None and n_track != len(frames["rgb_face"]):
            notes.append(f"rgb_face: landmark track of {n_track} frames for {len(frames['rgb_face'])} RGB frames "
                         "(RGB frames past the track took its last box)")
    fit = read_recording_fit(_open_cached(open_files, coefficients_dir / f"{user}.h5", open_coefficients_file), rid)
    arrays["alpha_au"] = np.where(fit.valid[:, None], fit.alpha_au, 0).astype(np.float32)
    arrays["alpha_valid"] = fit.valid
    lengths["coefficients"] = len(fit.valid)
    n = min(lengths.values())
    note = "" if max(lengths.values()) == n else "lengths differ (" + ", ".join(
        f"{k} {v}" for k, v in lengths.items()) + f"); kept the first {n} frames"
    if missing_rgb:
        note = "; ".join(filter(None, [note, f"{missing_rgb} RGB frames undecodable (previous frame repeated)"]))
    note = "; ".join(filter(None, [note, *notes]))
    arrays = {k: v[:n] for k, v in arrays.items()}
    au = int(row.au)
    attrs.update(recording_id=rid, user=user, au=au, label=au_class_index(au), split=str(row.split), n_frames=n)
    return attrs, arrays, note


def run_shards(manifest_path: str | Path, events_dir: str | Path, coefficients_dir: str | Path,
               out_dir: str | Path, options: ShardsOptions, splits: tuple[str, ...] = ("train", "test"),
               data_root: str | Path | None = None, quality_path: str | Path | None = None,
               landmarks_dir: str | Path | None = None) -> ShardsResult:
    """Write the shard files and ``index.csv`` of the given splits; one unusable recording never stops the
    others (it is skipped, with its reason in the index and the result). Every file of the ``train`` split
    carries the :class:`~.io.AlphaStats` of that split's coefficients (training split only: the test split
    never informs the L_alpha target scaling).

    With ``quality_path`` (``results/quality.csv``), a recording whose ``train_ok`` is false there is kept
    out of every split (status ``excluded``, the quality reason as the note), so damaged data never
    reaches a model unmarked.

    The ``rgb_face`` modality needs ``landmarks_dir`` (the per-user landmarks files): each sample's
    ``face_crop`` attr and the index's ``face_crop`` column say whether its frames are the face crop
    (``face``) or, for a recording without any valid face, the centre crop (:mod:`.face`).
    """
    manifest_path, out_dir = Path(manifest_path), Path(out_dir)
    events_dir, coefficients_dir = Path(events_dir), Path(coefficients_dir)
    data_root = Path(data_root) if data_root else None
    size, crop, num_shards, modalities = options.size, options.crop, options.num_shards, tuple(options.modalities)
    landmarks_dir = Path(landmarks_dir) if landmarks_dir else None
    if "rgb_face" in modalities and landmarks_dir is None:
        raise FacemorphicError("the rgb_face modality needs the landmarks folder (landmarks_dir, --landmarks-dir)")
    manifest = read_manifest(manifest_path, MANIFEST_NEEDS)
    au_rows = manifest[manifest["task"] == "au"].sort_values("recording_id")
    excluded: dict[str, str] = {}
    if quality_path is not None:
        quality = read_quality(quality_path)
        flagged = quality[~quality["train_ok"] & (quality["recording_id"] != "")]
        excluded = dict(zip(flagged["recording_id"], flagged["reason"]))
    other = sorted(set(au_rows["split"]) - set(splits))
    if other:
        log.warning("AU recordings in splits %s are not sharded (splits asked for: %s)", other, list(splits))
    result = ShardsResult()
    indexes = []
    open_files: dict = {}
    try:
        for split in splits:
            rows = au_rows[au_rows["split"] == split]
            records = []
            paths = [out_dir / split / f"shard-{k}.h5" for k in range(num_shards)]
            with contextlib.ExitStack() as stack:
                files = []
                for path in paths:
                    tmp = stack.enter_context(atomic_path(path))
                    file = stack.enter_context(h5py.File(tmp, "w"))
                    file.attrs.update(format=SHARD_FORMAT, split=split, size=size, crop=crop,
                                      modalities=",".join(modalities))
                    if "rgb_face" in modalities:
                        file.attrs.update(face_margin=options.face_margin,
                                          face_smoothing_frames=options.face_smoothing_frames)
                    files.append(file)
                alphas, valids = [], []  # the training split's coefficients, for its AlphaStats
                bar = tqdm(list(rows.itertuples()), desc=f"shards {split}", unit="rec", disable=None)
                for position, row in enumerate(bar):
                    shard = position % num_shards
                    record = dict(recording_id=row.recording_id, user=row.user, au=row.au, split=split,
                                  shard=str(paths[shard].name), n_frames=0, status="ok", face_crop="", note="")
                    if str(row.recording_id) in excluded:
                        reason = f"quality: {excluded[str(row.recording_id)]}"
                        log.warning("excluding %s: %s", row.recording_id, reason)
                        record.update(shard="", status="excluded", note=reason)
                        records.append(record)
                        result.failures[str(row.recording_id)] = reason
                        continue
                    try:
                        attrs, arrays, note = load_recording(row, events_dir, coefficients_dir, size, crop,
                                                             modalities, data_root, open_files, landmarks_dir,
                                                             options.face_margin, options.face_smoothing_frames)
                    except (InputFileError, ValueError) as exc:
                        log.warning("skipping %s: %s", row.recording_id, exc)
                        record.update(shard="", status="skipped", note=str(exc))
                        records.append(record)
                        result.failures[str(row.recording_id)] = str(exc)
                        continue
                    if note:
                        log.warning("%s: %s", row.recording_id, note)
                    write_sample(files[shard], str(row.recording_id), attrs, arrays)
                    alphas.append(arrays["alpha_au"])
                    valids.append(arrays["alpha_valid"])
                    record.update(n_frames=attrs["n_frames"], face_crop=attrs.get("face_crop", ""), note=note)
                    records.append(record)
                    result.written.setdefault(split, []).append(str(row.recording_id))
                if split == "train" and any(np.any(valid) for valid in valids):
                    stats = alpha_statistics(alphas, valids)
                    for file in files:
                        write_alpha_stats(file, stats)
            index = pd.DataFrame.from_records(records, columns=["recording_id", "user", "au", "split", "shard",
                                                                "n_frames", "status", "face_crop", "note"])
            write_csv_atomic(index, out_dir / split / "index.csv")
            indexes.append(index)
    finally:
        for file in open_files.values():
            file.close()
    result.index = pd.concat(indexes, ignore_index=True) if indexes else pd.DataFrame()
    return result
