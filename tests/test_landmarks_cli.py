"""``facemorphic landmarks``: the per-user HDF5 contract (DESIGN.md), failures, truth, and the CSV mode."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pandas as pd
import pytest
import skimage.data

from facemorphic.cli import main
from facemorphic.landmarks import TrackOptions, landmark_stream
from facemorphic.landmarks.dlib_backend import DlibBackend
from facemorphic.video import write_mp4

FACE = skimage.data.astronaut()[20:320, 80:380]
N_FRAMES = 10


def face_frames(n_frames, blank=()):
    for k in range(n_frames):
        frame = np.full((480, 640, 3), 70, np.uint8)
        if k not in blank:
            frame[90:390, 100 + 2 * k: 400 + 2 * k] = FACE
        yield frame


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    root = tmp_path_factory.mktemp("rgb")
    good = root / "frames_1.mp4"
    write_mp4(good, face_frames(N_FRAMES, blank={4}))
    broken = root / "frames_2.mp4"
    broken.write_bytes(good.read_bytes()[: 2000])  # MP4 cut before its index: unreadable
    return good, broken


def write_manifest(path, rows):
    columns = ["recording_id", "user", "task", "au", "repetition", "rgb_path", "rgb_frames", "rgb_fps"]
    pd.DataFrame([dict(zip(columns, row)) for row in rows], columns=columns).to_csv(path, index=False)


def test_manifest_mode_writes_contract_and_records_failures(videos, tmp_path):
    good, broken = videos
    manifest = tmp_path / "u01.csv"
    # the second recording claims more frames than its video holds
    write_manifest(manifest, [("u01_AU_1_1", "u01", "au", 1, 1, good, N_FRAMES, 30.0),
                              ("u01_AU_1_2", "u01", "au", 1, 2, broken, N_FRAMES, 30.0),
                              ("u01_AU_2_1", "u01", "au", 2, 1, good, N_FRAMES + 3, 30.0)])
    out = tmp_path / "landmarks" / "u01.h5"
    assert main(["landmarks", "--manifest", str(manifest), "--out", str(out), "--backend", "dlib",
                 "--max-gap", "2", "--no-progress"]) == 0
    reference, _ = landmark_stream(DlibBackend(), good, TrackOptions(max_gap=2, progress=False))
    with h5py.File(out, "r") as handle:
        assert handle.attrs["backend"] == "dlib"
        failures = json.loads(handle.attrs["failures"])
        assert list(failures) == ["u01_AU_1_2"] and "frames_2.mp4" in failures["u01_AU_1_2"]
        assert sorted(handle) == ["u01_AU_1_1", "u01_AU_2_1"]
        group = handle["u01_AU_1_1"]
        assert group["landmarks"].dtype == np.float32 and group["landmarks"].shape == (N_FRAMES, 68, 3)
        assert group["bbox"].dtype == np.float32 and group["bbox"].shape == (N_FRAMES, 4)
        assert group["score"].dtype == np.float32 and group["score"].shape == (N_FRAMES,)
        assert group["valid"].dtype == bool and group["valid"].shape == (N_FRAMES,)
        assert group["landmarks"].compression == "gzip"
        assert group.attrs["backend"] == "dlib" and group.attrs["landmarks_type"] == "2D"
        np.testing.assert_array_equal(group["landmarks"][()], reference.landmarks)
        np.testing.assert_array_equal(group["valid"][()], np.ones(N_FRAMES, bool))
        np.testing.assert_array_equal(group["interpolated"][()], np.arange(N_FRAMES) == 4)
        np.testing.assert_allclose(group["time_s"][()], np.arange(N_FRAMES) / 30.0, atol=1e-4)
        short = handle["u01_AU_2_1"]
        assert short["landmarks"].shape == (N_FRAMES + 3, 68, 3)
        np.testing.assert_array_equal(short["decoded"][()], np.arange(N_FRAMES + 3) < N_FRAMES)
        assert not short["valid"][N_FRAMES:].any() and np.isnan(short["time_s"][N_FRAMES:]).all()
        assert short.attrs["n_frames_stream"] == N_FRAMES and short.attrs["n_frames"] == N_FRAMES + 3


def test_every_recording_failing_is_an_error_and_writes_nothing(videos, tmp_path):
    manifest = tmp_path / "u02.csv"
    write_manifest(manifest, [("u02_AU_1_1", "u02", "au", 1, 1, videos[1], N_FRAMES, 30.0)])
    out = tmp_path / "u02.h5"
    assert main(["landmarks", "--manifest", str(manifest), "--out", str(out), "--backend", "dlib",
                 "--no-progress"]) == 2
    assert not out.exists() and not list(tmp_path.glob(".u02*"))


def test_truth_backend_reads_synthetic_truth(tmp_path):
    truth_root = tmp_path / "truth"
    truth_root.mkdir()
    rng = np.random.default_rng(0)
    points = rng.uniform(100, 300, (7, 68, 2)).astype(np.float32)
    points[3] = np.nan  # face out of view in the truth
    with h5py.File(truth_root / "u03.h5", "w") as handle:
        group = handle.create_group("u03_AU_4_1")
        group.create_dataset("landmarks_rgb", data=points)
        group.create_dataset("rgb_times_s", data=np.arange(7) / 30.0)
    manifest = tmp_path / "u03.csv"
    write_manifest(manifest, [("u03_AU_4_1", "u03", "au", 4, 1, "unused.mp4", 7, 30.0),
                              ("u03_AU_4_2", "u03", "au", 4, 2, "unused.mp4", 7, 30.0)])
    out = tmp_path / "u03.h5"
    assert main(["landmarks", "--manifest", str(manifest), "--out", str(out), "--backend", "truth",
                 "--truth-root", str(truth_root), "--no-progress"]) == 0
    with h5py.File(out, "r") as handle:
        assert handle.attrs["backend"] == "truth"
        assert "u03_AU_4_2" in json.loads(handle.attrs["failures"])
        group = handle["u03_AU_4_1"]
        valid = np.arange(7) != 3
        np.testing.assert_array_equal(group["valid"][()], valid)
        np.testing.assert_array_equal(group["landmarks"][valid, :, :2], points[valid])
        assert np.all(group["landmarks"][valid, :, 2] == 0)
        np.testing.assert_allclose(group["bbox"][0], [*points[0].min(0), *points[0].max(0)])
        np.testing.assert_allclose(group["time_s"][()], np.arange(7) / 30.0)


def test_csv_mode_for_a_video(videos, tmp_path):
    out = tmp_path / "clip.csv"
    assert main(["landmarks", "--input", str(videos[0]), "--out", str(out), "--backend", "dlib",
                 "--max-gap", "0", "--no-progress"]) == 0
    table = pd.read_csv(out)
    expected = (["frame", "time", "valid", "interpolated", "score", "box_x1", "box_y1", "box_x2", "box_y2"]
                + [f"{axis}{k}" for axis in "xyz" for k in range(68)])
    assert list(table.columns) == expected and len(table) == N_FRAMES
    reference, _ = landmark_stream(DlibBackend(), videos[0], TrackOptions(max_gap=0, progress=False))
    np.testing.assert_array_equal(table["valid"].to_numpy(), np.arange(N_FRAMES) != 4)
    np.testing.assert_allclose(table[[f"x{k}" for k in range(68)]].to_numpy(), reference.landmarks[:, :, 0])
    np.testing.assert_allclose(table[[f"y{k}" for k in range(68)]].to_numpy(), reference.landmarks[:, :, 1])
    np.testing.assert_allclose(table["time"], np.arange(N_FRAMES) / 30.0, atol=1e-4)


def test_csv_mode_for_an_image(shared_data, tmp_path):
    from facemorphic.landmarks.metrics import normalised_mean_error, read_pts

    out = tmp_path / "takeo.csv"
    faces = shared_data / "faces"
    assert main(["landmarks", "--input", str(faces / "takeo.ppm"), "--out", str(out), "--backend", "dlib",
                 "--no-progress"]) == 0
    row = pd.read_csv(out).iloc[0]
    assert row["valid"] == 1 and row["frame"] == 0 and row["time"] == 0
    points = np.stack([[row[f"x{k}"], row[f"y{k}"]] for k in range(68)])
    assert normalised_mean_error(points, read_pts(faces / "takeo.pts")) <= 0.07


#: OpenFace 2 FeatureExtraction's CSV header for sequences (RecorderCSV: "frame, face_id, timestamp,
#: confidence, success"), then its 2D landmark columns x_0..x_67, y_0..y_67 (wiki "Output Format"); the
#: gaze and pose columns OpenFace puts between them are ones we do not produce.
OPENFACE_HEADER = "frame, face_id, timestamp, confidence, success"


def test_csv_openface_format_names_and_values(videos, tmp_path, capsys):
    ours, openface = tmp_path / "ours.csv", tmp_path / "openface.csv"
    common = ["landmarks", "--input", str(videos[0]), "--backend", "dlib", "--max-gap", "2", "--no-progress"]
    assert main(common + ["--out", str(ours)]) == 0
    assert main(common + ["--out", str(openface), "--format", "openface"]) == 0
    assert "openface.csv: one face per frame (face_id 0): the largest" in capsys.readouterr().err
    table, reference = pd.read_csv(openface), pd.read_csv(ours)
    expected = ([name.strip() for name in OPENFACE_HEADER.split(",")]
                + [f"x_{k}" for k in range(68)] + [f"y_{k}" for k in range(68)])
    assert list(table.columns) == expected and len(table) == N_FRAMES
    np.testing.assert_array_equal(table["frame"], reference["frame"] + 1)  # OpenFace counts from 1
    np.testing.assert_array_equal(table["face_id"], np.zeros(N_FRAMES))
    np.testing.assert_allclose(table["timestamp"], reference["time"])
    np.testing.assert_array_equal(table["success"], reference["valid"])
    np.testing.assert_allclose(table["confidence"], np.where(reference["valid"] == 1, reference["score"], 0))
    for k in range(68):
        np.testing.assert_allclose(table[f"x_{k}"], reference[f"x{k}"])
        np.testing.assert_allclose(table[f"y_{k}"], reference[f"y{k}"])
    assert table["success"].sum() == N_FRAMES  # the blank frame 4 is interpolated (max gap 2)
    assert main(["landmarks", "--input", str(videos[0]), "--out", str(tmp_path / "x.h5"), "--backend", "dlib",
                 "--format", "openface", "--no-progress"]) == 2
    assert not (tmp_path / "x.h5").exists()


def test_one_log_line_per_recording_and_no_bars_off_a_terminal(tmp_path, capsys):
    truth_root = tmp_path / "truth"
    truth_root.mkdir()
    points = np.random.default_rng(1).uniform(100, 300, (8, 68, 2)).astype(np.float32)
    points[[2, 5]] = np.nan
    with h5py.File(truth_root / "u04.h5", "w") as handle:
        group = handle.create_group("u04_AU_4_1")
        group.create_dataset("landmarks_rgb", data=points)
        group.create_dataset("rgb_times_s", data=np.arange(8) / 30.0)
    manifest = tmp_path / "u04.csv"
    write_manifest(manifest, [("u04_AU_4_1", "u04", "au", 4, 1, "unused.mp4", 8, 30.0)])
    # progress left on: stderr is captured here, not a terminal, so tqdm must draw nothing
    assert main(["landmarks", "--manifest", str(manifest), "--out", str(tmp_path / "u04.h5"),
                 "--backend", "truth", "--truth-root", str(truth_root)]) == 0
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if "u04_AU_4_1:" in line]
    assert len(lines) == 1 and "u04_AU_4_1: 8 frames, 75.0% valid (0 interpolated), " in lines[0]
    assert "\r" not in err and "rec/s" not in err
