"""Build the shards from the manifest, the event frames, the RGB streams and the fitted coefficients.

One sample per AU recording (``task == 'au'``), grouped by the manifest's ``split`` column into
``{out_dir}/{split}/shard-{k}.h5`` with a fixed number of shards per split (recordings assigned round-robin
in recording-id order), so the output file names are known before the data is read, as Snakemake needs.
Each split folder also gets ``index.csv``: every AU recording of that split, its shard, its frame count,
and, for a recording that could not be used, the reason (nothing disappears silently).

The three streams are aligned frame by frame (event frame k is RGB frame k, coefficients are per RGB
frame); where their lengths differ, the sample keeps the common prefix and the index says so.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
from tqdm import tqdm

from .. import au_class_index
from ..errors import InputFileError
from ..fileio import atomic_path, write_csv_atomic
from .frames import read_rgb_frames, resize_frames, to_three_channels
from .io import SHARD_FORMAT, write_sample

log = logging.getLogger(__name__)

#: event frames read, resized and mapped per block (bounded memory at sensor resolution)
EVENT_BLOCK = 32


def _open_cache(cache: dict, path: Path) -> h5py.File:
    if path not in cache:
        if not path.is_file():
            raise InputFileError(path, "file not found")
        cache[path] = h5py.File(path, "r")
    return cache[path]


def _resolve(path: str, data_root: Path | None) -> Path:
    p = Path(path)
    return p if p.is_absolute() or data_root is None else data_root / p


def load_recording(row, events_dir: Path, coefficients_dir: Path, size: int, crop: str, modalities,
                   data_root: Path | None, open_files: dict) -> tuple[dict, dict, str]:
    """Arrays and attrs of one shard sample; raises InputFileError naming what is missing."""
    rid, user = str(row.recording_id), str(row.user)
    arrays, lengths, attrs = {}, {}, {}
    missing_rgb = 0
    if "events" in modalities:
        events_path = events_dir / f"{user}.h5"
        file = _open_cache(open_files, events_path)
        if rid not in file:
            raise InputFileError(events_path, f"no group for recording {rid}")
        frames = file[rid]["frames"]
        if frames.ndim != 4:
            raise InputFileError(events_path, f"{rid}/frames has shape {frames.shape}, expected [T, C, H, W]")
        attrs["event_representation"] = str(file[rid].attrs.get("representation", ""))
        attrs["event_channels"] = int(frames.shape[1])
        # streamed in blocks: sensor-size frames of a long recording would not fit in memory at once
        blocks = [to_three_channels(resize_frames(frames[i:i + EVENT_BLOCK], size, crop))
                  for i in range(0, len(frames), EVENT_BLOCK)]
        arrays["events"] = np.concatenate(blocks) if blocks else np.zeros((0, 3, size, size), np.uint8)
        lengths["events"] = len(frames)
    if "rgb" in modalities:
        arrays["rgb"], missing_rgb = read_rgb_frames(_resolve(row.rgb_path, data_root), size, crop)
        lengths["rgb"] = len(arrays["rgb"])
    coefficients_path = coefficients_dir / f"{user}.h5"
    file = _open_cache(open_files, coefficients_path)
    if rid not in file:
        raise InputFileError(coefficients_path, f"no group for recording {rid}")
    alpha = file[rid]["alpha_au"][()].astype(np.float32)
    valid = file[rid]["valid"][()].astype(bool)
    arrays["alpha_au"] = np.where(valid[:, None], alpha, 0).astype(np.float32)
    arrays["alpha_valid"] = valid
    lengths["coefficients"] = len(alpha)
    n = min(lengths.values())
    note = "" if max(lengths.values()) == n else "lengths differ (" + ", ".join(
        f"{k} {v}" for k, v in lengths.items()) + f"); kept the first {n} frames"
    if missing_rgb:
        note = "; ".join(filter(None, [note, f"{missing_rgb} RGB frames undecodable (previous frame repeated)"]))
    arrays = {k: v[:n] for k, v in arrays.items()}
    au = int(row.au)
    attrs.update(recording_id=rid, user=user, au=au, label=au_class_index(au), split=str(row.split), n_frames=n)
    return attrs, arrays, note


def build_shards(manifest_path: str | Path, events_dir: str | Path, coefficients_dir: str | Path,
                 out_dir: str | Path, size: int = 112, crop: str = "center", num_shards: int = 1,
                 splits=("train", "test"), modalities=("events", "rgb"),
                 data_root: str | Path | None = None) -> pd.DataFrame:
    """Write the shard files of the given splits; returns the index of every AU recording considered."""
    manifest_path, out_dir = Path(manifest_path), Path(out_dir)
    events_dir, coefficients_dir = Path(events_dir), Path(coefficients_dir)
    data_root = Path(data_root) if data_root else None
    manifest = pd.read_csv(manifest_path, dtype={"recording_id": str, "user": str, "split": str})
    missing = {"recording_id", "user", "task", "au", "split", "rgb_path"} - set(manifest.columns)
    if missing:
        raise InputFileError(manifest_path, f"missing columns {sorted(missing)}")
    au_rows = manifest[manifest["task"] == "au"].sort_values("recording_id")
    other = sorted(set(au_rows["split"]) - set(splits))
    if other:
        log.warning("AU recordings in splits %s are not sharded (splits asked for: %s)", other, list(splits))
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
                    files.append(file)
                for position, row in enumerate(tqdm(list(rows.itertuples()), desc=f"shards {split}", unit="rec")):
                    shard = position % num_shards
                    record = dict(recording_id=row.recording_id, user=row.user, au=row.au, split=split,
                                  shard=str(paths[shard].name), n_frames=0, status="ok", note="")
                    try:
                        attrs, arrays, note = load_recording(row, events_dir, coefficients_dir, size, crop,
                                                             modalities, data_root, open_files)
                    except (InputFileError, ValueError) as exc:
                        log.warning("skipping %s: %s", row.recording_id, exc)
                        record.update(shard="", status="skipped", note=str(exc))
                        records.append(record)
                        continue
                    if note:
                        log.warning("%s: %s", row.recording_id, note)
                    write_sample(files[shard], str(row.recording_id), attrs, arrays)
                    record.update(n_frames=attrs["n_frames"], note=note)
                    records.append(record)
            index = pd.DataFrame.from_records(records, columns=["recording_id", "user", "au", "split", "shard",
                                                                "n_frames", "status", "note"])
            write_csv_atomic(index, out_dir / split / "index.csv")
            indexes.append(index)
    finally:
        for file in open_files.values():
            file.close()
    return pd.concat(indexes, ignore_index=True) if indexes else pd.DataFrame()
