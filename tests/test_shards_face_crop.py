"""The rgb_face shard modality: the smoothed face box, the crop it gives, and the shards built with it."""

from __future__ import annotations

import av
import h5py
import numpy as np
import pandas as pd
import pytest

from facemorphic.cli import main
from facemorphic.fitting.io import write_coefficients
from facemorphic.fitting.recording import RecordingFit
from facemorphic.landmarks.io import write_track_group
from facemorphic.landmarks.tracking import LandmarkTrack
from facemorphic.options import build_options
from facemorphic.shards import ShardsOptions, list_samples, resize_frames, run_shards
from facemorphic.shards.face import FACE_CROP, FACE_FALLBACK, centred_median, face_track, square_boxes
from facemorphic.shards.frames import resize_boxes
from facemorphic.video.reader import open_rgb


def boxes_of(cx, cy, side, aspect=0.8):
    """x1, y1, x2, y2 boxes of width ``side`` and height ``aspect * side`` (so the larger side is ``side``)."""
    cx, cy, side = (np.asarray(v, dtype=np.float64) for v in (cx, cy, side))
    return np.stack([cx - side / 2, cy - aspect * side / 2, cx + side / 2, cy + aspect * side / 2], axis=1)


def test_face_track_removes_jitter_and_fills_gaps():
    n = 60
    k = np.arange(n, dtype=np.float64)
    # truth: still until frame 29, then moving right and up and growing (monotone in every value)
    truth = np.stack([np.where(k < 29, 100.0, 100.0 + 2.0 * (k - 29)),
                      np.where(k < 29, 80.0, 80.0 - 1.0 * (k - 29)),
                      np.where(k < 29, 40.0, 40.0 + 0.5 * (k - 29))], axis=1)
    observed = truth.copy()
    for frame, (dx, dy, scale) in {5: (30, -25, 1.5), 15: (-20, 12, 0.7), 24: (9, 9, 1.2)}.items():
        observed[frame] += (dx, dy, 0)  # isolated misfits: far off for one frame
        observed[frame, 2] *= scale
    bbox = boxes_of(*observed.T)
    valid = np.ones(n, dtype=bool)
    valid[[0, 1]] = False  # no face before frame 2
    valid[40:45] = False  # a gap while moving
    valid[57:] = False  # lost at the end
    bbox[~valid] = np.nan
    valid[50] = False  # a frame the landmarks stage refused: its (finite) box must not count
    bbox[50] = (0, 0, 500, 500)

    expected = truth.copy()
    expected[57:] = truth[56]  # after the last valid frame: the last valid box
    smoothed = face_track(bbox, valid, n, smoothing_frames=7)
    np.testing.assert_allclose(smoothed, expected, atol=1e-9)
    # the same with an even window (rounded up to 7), and the misfits are really there without smoothing
    np.testing.assert_allclose(face_track(bbox, valid, n, smoothing_frames=6), expected, atol=1e-9)
    raw = face_track(bbox, valid, n, smoothing_frames=1)
    assert raw[5, 0] == pytest.approx(130.0) and raw[15, 2] == pytest.approx(28.0)
    np.testing.assert_allclose(raw[42], truth[42], atol=1e-9)  # the gap is interpolated linearly
    np.testing.assert_allclose(raw[:2], np.repeat(truth[2:3], 2, axis=0), atol=1e-9)  # nearest before the first
    # the RGB stream may be longer than the track: its extra frames hold the last box
    longer = face_track(bbox, valid, n + 3, smoothing_frames=7)
    np.testing.assert_allclose(longer[n:], np.repeat(truth[56:57], 3, axis=0), atol=1e-9)


def test_face_track_smooths_noise_and_reports_no_face():
    rng = np.random.default_rng(0)
    n = 300
    noisy = np.array([320.0, 240.0, 150.0]) + rng.normal(0, 2.0, size=(n, 3))
    smoothed = face_track(boxes_of(*noisy.T), np.ones(n, bool), n, smoothing_frames=9)
    assert np.std(smoothed - [320.0, 240.0, 150.0], axis=0).max() < 0.5 * 2.0
    assert face_track(np.full((5, 4), np.nan), np.zeros(5, bool), 5, 7) is None
    assert face_track(np.zeros((0, 4)), np.zeros(0, bool), 0, 7) is None
    # the centred window shrinks symmetrically at the ends: frame 1 of 5 uses frames 0..2
    np.testing.assert_allclose(centred_median(np.array([0.0, 10.0, 1.0, 2.0, 3.0]), 5), [0, 1, 2, 2, 3])


def test_square_boxes_stay_square_and_inside_the_image():
    track = np.array([[46.0, 20.0, 20.0],  # inside: as asked
                      [5.0, 3.0, 20.0],  # past the top-left corner: shifted inside
                      [62.0, 47.0, 20.0],  # past the bottom-right corner
                      [32.0, 24.0, 100.0]])  # larger than the image: the shorter side
    boxes = square_boxes(track, 1.5, height=48, width=64)
    np.testing.assert_array_equal(boxes, [[5, 35, 31, 61], [0, 30, 0, 30], [18, 48, 34, 64], [0, 48, 8, 56]])
    assert np.all(boxes[:, 1] - boxes[:, 0] == boxes[:, 3] - boxes[:, 2])


def test_the_crop_lands_on_the_face_rectangle():
    image = np.full((1, 3, 48, 64), 30, dtype=np.uint8)
    image[0, :, 10:30, 36:56] = 200  # the "face"
    image[0, 1, 10:30, 36:56] = np.arange(20, dtype=np.uint8)[None, :] * 5 + 100  # with a ramp to place it
    track = face_track(np.array([[36.0, 10.0, 56.0, 30.0]]), np.ones(1, bool), 1, 7)
    np.testing.assert_allclose(track, [[46.0, 20.0, 20.0]])
    crop = resize_boxes(image, square_boxes(track, 1.0, 48, 64), 10)  # margin 1: exactly the face
    expected = image[0, :, 10:30, 36:56].reshape(3, 10, 2, 10, 2).astype(float).mean(axis=(2, 4))
    np.testing.assert_array_equal(crop[0], np.round(expected).astype(np.uint8))
    assert np.all(crop[0, 0] == 200)
    wide = resize_boxes(image, square_boxes(track, 1.5, 48, 64), 10)  # 30x30 from (5, 31): 3x3 blocks
    expected = image[0, :, 5:35, 31:61].reshape(3, 10, 3, 10, 3).astype(float).mean(axis=(2, 4))
    np.testing.assert_array_equal(wide[0], np.round(expected).astype(np.uint8))
    assert np.all(wide[0, 0, 2:8, 2:8] == 200) and np.all(wide[0, 0, 0, :] < 200)  # the face, with a border


SIZE = 8
HEIGHT, WIDTH = 48, 64


def write_gray_mp4(path, frames):
    """Gray (R = G = B) frames [T, H, W] in a lossless-luma H.264 file."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        stream.options = {"crf": "0"}
        for frame in frames:
            image = np.repeat(frame[:, :, None], 3, axis=2)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def decoded_frames(path) -> np.ndarray:
    """The frames as the project's reader decodes them, [T, 3, H, W] (the crop's input)."""
    batches = list(open_rgb(path).batches(64))
    return np.concatenate([b.images for b in batches]).transpose(0, 3, 1, 2)


@pytest.fixture
def face_upstream(tmp_path):
    """A manifest, RGB videos, landmarks and coefficient files for two AU recordings of one user: one whose
    face moves one pixel right per frame (face box 16 wide, 12 high), one without any face."""
    rng = np.random.default_rng(0)
    n = 10
    rows = []
    tracks = {}
    for rid, split in (("u1_AU_1_0", "train"), ("u1_AU_12_0", "test")):
        frames = rng.integers(0, 256, size=(n, HEIGHT, WIDTH), dtype=np.uint8)
        write_gray_mp4(tmp_path / f"{rid}.mp4", frames)
        rows.append(dict(recording_id=rid, user="u1", task="au", au=int(rid.split("_")[2]), split=split,
                         rgb_path=str(tmp_path / f"{rid}.mp4")))
        track = LandmarkTrack.empty(n)
        if rid == "u1_AU_1_0":
            k = np.arange(n)
            track.bbox[:] = np.stack([12.0 + k, 18.0 + 0 * k, 28.0 + k, 30.0 + 0 * k], axis=1)  # centre (20 + k, 24)
            track.valid[:] = True
            track.valid[4] = False  # one frame without a face: interpolated
            track.bbox[4] = np.nan
        tracks[rid] = track
    pd.DataFrame(rows).to_csv(tmp_path / "manifest.csv", index=False)
    (tmp_path / "landmarks").mkdir()
    with h5py.File(tmp_path / "landmarks" / "u1.h5", "w") as file:
        for rid, track in tracks.items():
            write_track_group(file, rid, track, {})
    (tmp_path / "coefficients").mkdir()
    fits = {rid: RecordingFit(rng.normal(size=(n, 4)).astype(np.float32), np.zeros(4, np.float32),
                              np.zeros((n, 2, 4)), np.zeros(n), np.ones(n, bool), 0) for rid in tracks}
    write_coefficients(tmp_path / "coefficients" / "u1.h5", fits, {})
    return tmp_path


def test_shards_with_rgb_face_hold_the_expected_crops_and_record_the_fallback(face_upstream):
    root = face_upstream
    options = build_options(ShardsOptions, {"size": SIZE, "modalities": ["rgb", "rgb_face"], "face_margin": 1.5,
                                            "face_smoothing_frames": 3})
    result = run_shards(root / "manifest.csv", root / "events", root / "coefficients", root / "shards", options,
                        landmarks_dir=root / "landmarks")
    assert result.written == {"train": ["u1_AU_1_0"], "test": ["u1_AU_12_0"]} and not result.failures
    index = result.index.set_index("recording_id")
    assert index.loc["u1_AU_1_0", "face_crop"] == FACE_CROP
    assert "1 of 10 frames without a valid face" in index.loc["u1_AU_1_0", "note"]
    assert index.loc["u1_AU_12_0", "face_crop"] == FACE_FALLBACK
    assert "no valid face" in index.loc["u1_AU_12_0", "note"]
    on_disk = pd.read_csv(root / "shards" / "test" / "index.csv").set_index("recording_id")
    assert on_disk.loc["u1_AU_12_0", "face_crop"] == FACE_FALLBACK and "center crop" in on_disk.loc["u1_AU_12_0",
                                                                                                     "note"]
    samples = {s.recording_id: s for split in ("train", "test") for s in list_samples(root / "shards" / split)}
    with h5py.File(samples["u1_AU_1_0"].path, "r") as file:
        assert file.attrs["modalities"] == "rgb,rgb_face" and file.attrs["face_margin"] == 1.5
        group = file["u1_AU_1_0"]
        assert group.attrs["face_crop"] == FACE_CROP
        rgb, face = group["rgb"][()], group["rgb_face"][()]
    frames = decoded_frames(root / "u1_AU_1_0.mp4")
    assert len(frames) == 10 and face.shape == (10, 3, SIZE, SIZE)
    np.testing.assert_array_equal(rgb, resize_frames(frames, SIZE, "center"))  # the full view, as before
    for k in range(10):
        # the box centre (20 + k, 24), side 16 x 1.5 = 24: rows 12..36, columns 8 + k .. 32 + k; 3x3 block means
        region = frames[k, :, 12:36, 8 + k:32 + k].astype(float)
        expected = np.round(region.reshape(3, SIZE, 3, SIZE, 3).mean(axis=(2, 4))).astype(np.uint8)
        np.testing.assert_array_equal(face[k], expected, err_msg=f"frame {k}")
    with h5py.File(samples["u1_AU_12_0"].path, "r") as file:  # no face at all: the centre crop stands in
        group = file["u1_AU_12_0"]
        assert group.attrs["face_crop"] == FACE_FALLBACK
        np.testing.assert_array_equal(group["rgb_face"][()],
                                      resize_frames(decoded_frames(root / "u1_AU_12_0.mp4"), SIZE, "center"))


def test_rgb_face_feeds_the_clips_and_the_feature_cache(face_upstream, one_torch_thread):
    from facemorphic.training import ClipDataset

    root = face_upstream
    assert main(["shards", "--manifest", str(root / "manifest.csv"), "--events-dir", str(root / "events"),
                 "--coefficients-dir", str(root / "coefficients"), "--out-dir", str(root / "shards"),
                 "--size", str(SIZE), "--modalities", "rgb_face"]) == 2  # no --landmarks-dir: refused
    assert main(["shards", "--manifest", str(root / "manifest.csv"), "--events-dir", str(root / "events"),
                 "--coefficients-dir", str(root / "coefficients"), "--landmarks-dir", str(root / "landmarks"),
                 "--out-dir", str(root / "shards"), "--size", str(SIZE), "--modalities", "rgb_face"]) == 0
    samples = list_samples(root / "shards" / "train")
    item = ClipDataset(samples, "rgb_face", clip_length=4, windows="center")[0]
    with h5py.File(samples[0].path, "r") as file:
        np.testing.assert_array_equal(item["frames"].numpy(), file[samples[0].recording_id]["rgb_face"][3:7])
    assert main(["features", "--shards-dir", str(root / "shards"), "--modality", "rgb_face", "--out-dir",
                 str(root / "features" / "rgb_face"), "--options", '{"device": "cpu", "batch_frames": 16}']) == 0
    with h5py.File(root / "features" / "rgb_face" / "train.h5", "r") as file:
        assert file.attrs["modality"] == "rgb_face" and file["u1_AU_1_0"]["features"].shape == (10, 512)


def test_table3_puts_the_face_crop_beside_rgb_without_the_papers_numbers(tmp_path):
    import json

    from facemorphic import ACTION_UNITS
    from facemorphic.evaluation.tables import build_tables, load_runs

    rng = np.random.default_rng(0)
    folders = []
    for experiment, modality in (("lstm_events", "events"), ("lstm_rgb", "rgb"), ("lstm_rgb_face", "rgb_face")):
        folder = tmp_path / experiment / "seed-0"
        folder.mkdir(parents=True)
        labels = np.arange(24)
        frame = pd.DataFrame({"recording_id": [f"r{i}" for i in labels], "split": "test", "label": labels})
        for c, au in enumerate(ACTION_UNITS):
            frame[f"logit_AU{au}"] = rng.normal(size=24)
        frame.to_csv(folder / "predictions.csv", index=False)
        (folder / "run.json").write_text(json.dumps(dict(experiment=experiment, model="resnet18_lstm",
                                                         modality=modality, lambda_alpha=0.0, seed=0, epochs=1)))
        folders.append(folder)
    table3 = build_tables(*load_runs(folders))["table3_event_vs_rgb"]
    assert list(table3["experiment"]) == ["lstm_events", "lstm_rgb", "lstm_rgb_face"]  # face crop beside RGB
    assert list(table3.columns[:4]) == ["experiment", "model", "modality", "crop"]
    rows = table3.set_index("experiment")
    assert rows.loc["lstm_rgb_face", "crop"] == "face" and rows.loc["lstm_rgb", "crop"].startswith("full view")
    assert rows.loc["lstm_rgb", "paper_top1_pct"] == 25.65  # the paper's RGB setting
    assert rows.loc["lstm_rgb_face", ["paper_top1_pct", "paper_top3_pct", "paper_top5_pct"]].isna().all()
