"""Unit tests of the hostile-input handling and the quality decisions, each against a known truth:
hand-written sync files, files made unreadable, a video damaged so FFmpeg conceals it, JPEG folders with
known missing indices, rows with known thresholds."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import av
import h5py
import numpy as np
import pandas as pd
import pytest

from facemorphic.dataset.ingest import ingest_user, parse_sync_csv, read_sync_csv
from facemorphic.errors import InputFileError
from facemorphic.landmarks.pipeline import TrackOptions, landmark_manifest, read_manifest_rows
from facemorphic.quality.options import QualityOptions
from facemorphic.quality.table import compact_ranges, train_decision
from facemorphic.video.probe import probe_rgb
from facemorphic.video.reader import open_rgb
from media import random_events, write_evt3_simple, write_jpeg_folder, write_mp4


def test_sync_csv_non_number_is_a_bad_row_naming_file_and_line(tmp_path):
    path = tmp_path / "sync.csv"
    path.write_text("recording_id,event_offset_us\nu_AU_1_1,12ab\nu_AU_1_2,1500\nu_AU_1_3,\nu_AU_1_4,2.5\n")
    offsets, bad = parse_sync_csv(path)
    assert offsets == {"u_AU_1_2": 1500}
    assert sorted(bad) == ["u_AU_1_1", "u_AU_1_3", "u_AU_1_4"]
    assert f"{path} line 2: event_offset_us '12ab'" in bad["u_AU_1_1"]
    with pytest.raises(InputFileError, match="3 bad row"):
        read_sync_csv([path])


def test_bad_sync_row_rejects_only_that_recording(tmp_path):
    for rep in (1, 2):
        write_evt3_simple(tmp_path / "u" / "AU_1" / f"event_{rep}.raw", random_events(200, 500, 300_000))
        write_mp4(tmp_path / "u" / "AU_1" / f"frames_{rep}.mp4", 8)
    (tmp_path / "u" / "sync.csv").write_text("recording_id,event_offset_us\nu_AU_1_1,x\nu_AU_1_2,777\n")
    rows, rejects = ingest_user(tmp_path, "u", progress=False)
    assert rows.recording_id.tolist() == ["u_AU_1_2"] and rows.event_offset_us.tolist() == [777]
    assert rejects.recording_id.tolist() == ["u_AU_1_1"] and "'x' is not a whole number" in rejects.reason[0]


UNREADABLE_PROBE = """
import os, sys
import av, PIL.Image, facemorphic.events.raw, facemorphic.video.probe  # imported while the code is readable
from facemorphic.dataset.ingest import ingest_user
os.setgid(65534); os.setuid(65534)
rows, rejects = ingest_user(sys.argv[1], "u", progress=False)
print(len(rows)); print(rejects.to_json(orient="records"))
"""


def test_unreadable_files_and_folders_become_rejections():
    """As root, permissions do not apply: the probe then runs as user nobody (65534) in a subprocess."""
    root = Path(tempfile.mkdtemp(prefix="facemorphic-perm-"))
    try:
        os.chmod(root, 0o755)
        for au in (1, 2, 4):
            write_evt3_simple(root / "u" / f"AU_{au}" / "event_1.raw", random_events(200, 500, 300_000))
            write_mp4(root / "u" / f"AU_{au}" / "frames_1.mp4", 8)
        os.chmod(root / "u" / "AU_1" / "event_1.raw", 0)
        os.chmod(root / "u" / "AU_2", 0)
        for folder in [root / "u", root / "u" / "AU_1", root / "u" / "AU_4"]:
            os.chmod(folder, 0o755)
        if os.geteuid() == 0:
            command = [sys.executable, "-c", UNREADABLE_PROBE, str(root)]
        else:
            command = [sys.executable, "-c", UNREADABLE_PROBE.replace("os.setgid(65534); os.setuid(65534)", ""),
                       str(root)]
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
        proc = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
        assert proc.returncode == 0, proc.stderr[-2000:]
        n_rows, rejects = proc.stdout.strip().splitlines()[-2:]
        rejects = pd.read_json(__import__("io").StringIO(rejects))
        assert int(n_rows) == 1  # AU_4 only
        reasons = dict(zip(rejects.path, rejects.reason))
        assert reasons[str(root / "u" / "AU_1" / "event_1.raw")] == "RAW: cannot read: Permission denied"
        assert reasons[str(root / "u" / "AU_2")] == "cannot list the folder: Permission denied"
    finally:
        for path in [root / "u" / "AU_2", root / "u" / "AU_1" / "event_1.raw"]:
            os.chmod(path, 0o755)
        import shutil

        shutil.rmtree(root)


def test_concealed_video_damage_is_counted(tmp_path):
    clean = write_mp4(tmp_path / "clean.mp4", 30)
    with av.open(str(clean)) as container:
        packets = [(p.pos, p.size) for p in container.demux(container.streams.video[0]) if p.size > 0]
    data = bytearray(clean.read_bytes())
    pos, size = max(packets[1:10], key=lambda p: p[1])
    for i in range(pos + size // 2, pos + size - 2):
        data[i] ^= 0x55
    damaged = tmp_path / "damaged.mp4"
    damaged.write_bytes(bytes(data))
    counts = {}
    for path in (clean, damaged):
        reader = open_rgb(path)
        sum(len(batch) for batch in reader.batches(8))
        counts[path.name] = reader.decode_errors
    assert counts["clean.mp4"] == 0 and counts["damaged.mp4"] > 0


def test_dropped_jpeg_indices_are_reported(tmp_path):
    folder = write_jpeg_folder(tmp_path / "frames_1", np.arange(12) / 30)
    for k in (2, 7, 8):
        next(folder.glob(f"frame_{k}_*.jpg")).unlink()
    assert probe_rgb(folder).dropped_frames == (2, 7, 8)
    assert compact_ranges((2, 7, 8)) == "2;7-8"


def test_compact_ranges_matches_a_slow_expansion():
    rng = np.random.default_rng(0)
    numbers = sorted(set(rng.integers(0, 60, 25).tolist()))
    expanded = []
    for part in compact_ranges(numbers).split(";"):
        low, _, high = part.partition("-")
        expanded += list(range(int(low), int(high or low) + 1))
    assert expanded == numbers


def quality_row(**changes):
    row = {"status": "ok", "reason": "", "empty_event_fraction": 0.1, "landmark_valid_fraction": 0.9,
           "rgb_decode_errors": 0, "rgb_dropped_frames": 0, "geometry_source": "format", "raw_truncated": False}
    return {**row, **changes}


def test_train_decision_thresholds():
    options = QualityOptions()
    assert train_decision(quality_row(), options) == (True, "", "")
    ok, reason, _ = train_decision(quality_row(empty_event_fraction=0.95), options)
    assert not ok and "95% of the event frames are empty" in reason
    ok, reason, _ = train_decision(quality_row(landmark_valid_fraction=0.0), options)
    assert not ok and "valid landmarks" in reason
    ok, reason, _ = train_decision(quality_row(rgb_decode_errors=1), options)
    assert not ok and "1 RGB decode error" in reason
    assert train_decision(quality_row(rgb_decode_errors=1), QualityOptions(max_rgb_decode_errors=1))[0]
    ok, _, flags = train_decision(quality_row(geometry_source="sensor generation", raw_truncated=True), options)
    assert ok and "guessed" in flags and "truncated" in flags


def test_empty_manifest_gives_an_empty_landmarks_file(tmp_path):
    manifest = tmp_path / "u.csv"
    pd.DataFrame(columns=["recording_id", "user", "rgb_path", "rgb_frames"]).to_csv(manifest, index=False)
    rows = read_manifest_rows(manifest, "u")
    failures = landmark_manifest(rows, tmp_path / "u.h5", "truth", None, TrackOptions(progress=False),
                                 truth_root=tmp_path)
    assert failures == {}
    with h5py.File(tmp_path / "u.h5", "r") as handle:
        assert list(handle) == [] and handle.attrs["failures"] == "{}"
