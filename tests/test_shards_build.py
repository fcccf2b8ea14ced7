"""Shards from small upstream files written by the stages' writers: values, grouping, alignment."""

from __future__ import annotations

import av
import h5py
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from facemorphic import au_class_index
from facemorphic.cli import main
from facemorphic.events.io import EventFrames, write_event_frames
from facemorphic.fitting.io import write_coefficients
from facemorphic.fitting.recording import RecordingFit
from facemorphic.options import build_options
from facemorphic.shards import ShardsOptions, list_samples, resize_frames, run_shards, to_three_channels

SIZE = 16


def write_mp4(path, gray_levels, height=48, width=64):
    """A tiny H.264 video whose frame k is uniformly gray_levels[k] (survives lossy coding closely)."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": "0"}
        for level in gray_levels:
            image = np.full((height, width, 3), level, dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def write_jpeg_folder(folder, gray_levels, height=48, width=64):
    folder.mkdir()
    for k, level in enumerate(gray_levels):  # frame_2 sorts after frame_10 as text; the index must win
        Image.fromarray(np.full((height, width, 3), level, np.uint8)).save(
            folder / f"frame_{k}_10:00:{k:02d}.000000.jpg", quality=100)


@pytest.fixture
def upstream(tmp_path):
    """Manifest, per-user event and coefficient files and RGB streams for 4 AU recordings and 1 free one."""
    rng = np.random.default_rng(0)
    rows, truth = [], {}
    events = {"u1": {}, "u2": {}}
    coefficients = {"u1": {}, "u2": {}}
    specs = [  # recording, user, au, split, n_rgb, n_events, n_coefficients, rgb kind
        ("u1_AU_1_0", "u1", 1, "train", 12, 12, 12, "mp4"),
        ("u1_AU_12_0", "u1", 12, "test", 11, 12, 12, "jpeg"),
        ("u2_AU_56_0", "u2", 56, "train", 10, 10, 10, "mp4"),
        ("u2_AU_4_0", "u2", 4, "train", 10, 10, 10, "mp4"),  # its coefficients are missing
    ]
    for rid, user, au, split, n_rgb, n_ev, n_co, kind in specs:
        levels = (np.arange(n_rgb) * 17 + 20) % 240
        if kind == "mp4":
            rgb_path = tmp_path / f"{rid}.mp4"
            write_mp4(rgb_path, levels)
        else:
            rgb_path = tmp_path / f"{rid}_frames"
            write_jpeg_folder(rgb_path, levels)
        frames = rng.integers(0, 256, size=(n_ev, 2, 32, 48), dtype=np.uint8)  # 2-channel polarity frames
        events[user][rid] = frames
        if rid != "u2_AU_4_0":
            alpha = rng.normal(size=(n_co, 32)).astype(np.float32)
            valid = rng.random(n_co) > 0.3
            coefficients[user][rid] = (alpha, valid)
        rows.append(dict(recording_id=rid, user=user, task="au", au=au, split=split, rgb_path=str(rgb_path)))
        truth[rid] = dict(levels=levels, n=min(n_rgb, n_ev, n_co))
    rows.append(dict(recording_id="u1_FREE_0", user="u1", task="free", au=0, split="train",
                     rgb_path=str(tmp_path / "none.mp4")))
    pd.DataFrame(rows).to_csv(tmp_path / "manifest.csv", index=False)
    (tmp_path / "events").mkdir()
    (tmp_path / "coefficients").mkdir()
    for user in events:
        with h5py.File(tmp_path / "events" / f"{user}.h5", "w") as file:
            for rid, frames in events[user].items():
                write_event_frames(file, EventFrames(rid, frames, np.arange(len(frames), dtype=np.int64) * 33333,
                                                     "histogram", 1, 2, (96, 64), 0))
        fits = {rid: RecordingFit(alpha, np.zeros(4, np.float32), np.zeros((len(alpha), 2, 4)),
                                  np.zeros(len(alpha)), valid, int(np.argmax(valid)))
                for rid, (alpha, valid) in coefficients[user].items()}
        write_coefficients(tmp_path / "coefficients" / f"{user}.h5", fits, {})
    return tmp_path, events, coefficients, truth


def test_resize_and_channel_mapping_against_block_means():
    rng = np.random.default_rng(1)
    frames = rng.integers(0, 256, size=(3, 2, 8, 12), dtype=np.uint8)
    # centre crop keeps columns 2..9 (8x8), then 2x2 block means
    expected = frames[:, :, :, 2:10].reshape(3, 2, 4, 2, 4, 2).astype(float).mean(axis=(3, 5))
    np.testing.assert_array_equal(resize_frames(frames, 4, "center"), np.round(expected).astype(np.uint8))
    # full frame squashed: 2x3 block means
    full = frames.reshape(3, 2, 4, 2, 4, 3).astype(float).mean(axis=(3, 5))
    np.testing.assert_array_equal(resize_frames(frames, 4, "full"), np.round(full).astype(np.uint8))
    three = to_three_channels(frames)
    np.testing.assert_array_equal(three[:, :2], frames)
    np.testing.assert_array_equal(three[:, 2], (frames[:, 0].astype(int) + frames[:, 1]) // 2)
    np.testing.assert_array_equal(to_three_channels(frames[:, :1]), np.repeat(frames[:, :1], 3, axis=1))
    bins = rng.integers(0, 256, size=(2, 6, 4, 4), dtype=np.uint8)
    np.testing.assert_array_equal(to_three_channels(bins)[:, 1],
                                  np.round(bins[:, 2:4].astype(float).mean(axis=1)).astype(np.uint8))


def test_area_resize_gives_torch_area_interpolation_bytes_in_both_memory_layouts():
    """The integer kernel against ``torch.nn.functional.interpolate(mode="area")`` rounded, the resize the
    stage used before: random crops, sizes up and down (non-integer ratios, overlapping bins), channel
    planes (event frames) and channels last in memory (decoded video), and values made to tie at .5."""
    import torch
    import torch.nn.functional as F

    from facemorphic.shards.frames import resize_boxes

    rng = np.random.default_rng(7)
    for trial in range(120):
        t, c = int(rng.integers(1, 4)), int(rng.integers(1, 5))
        h, w, size = int(rng.integers(1, 90)), int(rng.integers(1, 90)), int(rng.integers(1, 40))
        if trial % 2:
            frames = rng.integers(0, 256, (t, h, w, c), dtype=np.uint8).transpose(0, 3, 1, 2)
        else:
            frames = rng.integers(0, 256, (t, c, h, w), dtype=np.uint8)
        if trial % 3 == 0:  # two levels only: many bin means end in exactly .5
            frames = (frames // 128 * 128).astype(np.uint8)
        top, left = int(rng.integers(0, h)), int(rng.integers(0, w))
        bottom, right = int(rng.integers(top + 1, h + 1)), int(rng.integers(left + 1, w + 1))
        crop = torch.from_numpy(np.ascontiguousarray(frames[:, :, top:bottom, left:right])).float()
        expected = F.interpolate(crop, size=(size, size), mode="area").round().to(torch.uint8).numpy()
        boxes = np.tile([top, bottom, left, right], (t, 1))
        np.testing.assert_array_equal(resize_boxes(frames, boxes, size), expected, err_msg=f"trial {trial}")
    with pytest.raises(ValueError, match="empty or outside"):
        resize_boxes(frames, np.tile([0, 0, 0, 1], (t, 1)), 4)


def test_build_shards_values_grouping_and_index(upstream):
    root, events, coefficients, truth = upstream
    out = root / "shards"
    assert main(["shards", "--manifest", str(root / "manifest.csv"), "--events-dir", str(root / "events"),
                 "--coefficients-dir", str(root / "coefficients"), "--out-dir", str(out), "--size", str(SIZE),
                 "--num-shards", "2", "--modalities", "events", "rgb"]) == 0  # rgb_face: test_shards_face_crop.py
    assert sorted(p.name for p in (out / "train").iterdir()) == ["index.csv", "shard-0.h5", "shard-1.h5"]
    train = {s.recording_id: s for s in list_samples(out / "train")}
    test = {s.recording_id: s for s in list_samples(out / "test")}
    assert set(train) == {"u1_AU_1_0", "u2_AU_56_0"} and set(test) == {"u1_AU_12_0"}
    index = pd.read_csv(out / "train" / "index.csv").set_index("recording_id")
    assert index.loc["u2_AU_4_0", "status"] == "skipped" and "u2_AU_4_0" in index.loc["u2_AU_4_0", "note"]
    assert "u1_FREE_0" not in index.index
    # round-robin in recording-id order over the two shards
    assert index.loc["u1_AU_1_0", "shard"] == "shard-0.h5" and index.loc["u2_AU_56_0", "shard"] == "shard-0.h5"
    for rid, sample in {**train, **test}.items():
        user = sample.user
        n = truth[rid]["n"]
        assert sample.n_frames == n and sample.label == au_class_index(int(rid.split("_")[2]))
        with h5py.File(sample.path, "r") as file:
            group = file[rid]
            # events: centre 32x32 of 32x48, 2x2 block means, then (OFF, ON, mean) channels
            crop = events[user][rid][:n, :, :, 8:40].astype(float)
            blocks = np.round(crop.reshape(n, 2, SIZE, 2, SIZE, 2).mean(axis=(3, 5))).astype(np.uint8)
            np.testing.assert_array_equal(group["events"][:, :2], blocks)
            assert group["events"].shape == (n, 3, SIZE, SIZE) and group["events"].dtype == np.uint8
            # rgb: uniform gray frames, in frame-index order (lossless H.264 / quality-100 JPEG)
            rgb = group["rgb"][()]
            assert rgb.shape == (n, 3, SIZE, SIZE)
            np.testing.assert_allclose(rgb.reshape(n, -1).mean(axis=1), truth[rid]["levels"][:n], atol=2.5)
            alpha, valid = coefficients[user][rid]
            np.testing.assert_array_equal(group["alpha_valid"][()], valid[:n])
            np.testing.assert_array_equal(group["alpha_au"][()], np.where(valid[:n, None], alpha[:n], 0))
    note = pd.read_csv(out / "test" / "index.csv").set_index("recording_id").loc["u1_AU_12_0", "note"]
    assert "kept the first 11 frames" in note


def test_build_shards_single_split_and_missing_event_file_names_it(upstream):
    root, *_ = upstream
    (root / "events" / "u2.h5").unlink()
    options = build_options(ShardsOptions, {"size": SIZE, "modalities": ["events"]})
    result = run_shards(root / "manifest.csv", root / "events", root / "coefficients", root / "out", options,
                        splits=("train",))
    index = result.index
    assert result.written == {"train": ["u1_AU_1_0"]} and set(result.failures) == {"u2_AU_56_0", "u2_AU_4_0"}
    assert not (root / "out" / "test").exists()
    skipped = index[index["status"] == "skipped"]
    assert set(skipped["recording_id"]) == {"u2_AU_56_0", "u2_AU_4_0"}
    assert skipped["note"].str.contains("u2.h5").all()
    with h5py.File(root / "out" / "train" / "shard-0.h5", "r") as file:
        assert "rgb" not in file["u1_AU_1_0"] and file["u1_AU_1_0"]["events"].shape[0] == 12


def test_built_shards_feed_the_clip_dataset(upstream):
    from facemorphic.training import ClipDataset

    root, events, coefficients, truth = upstream
    run_shards(root / "manifest.csv", root / "events", root / "coefficients", root / "out",
               build_options(ShardsOptions, {"size": SIZE, "modalities": ["events", "rgb"]}))
    samples = list_samples(root / "out" / "train")
    for modality in ("events", "rgb", "coefficients"):
        dataset = ClipDataset(samples, modality, clip_length=16, windows="center")
        item = dataset[0]
        n = samples[0].n_frames
        assert item["alpha_valid"][n:].sum() == 0  # padded past the recording's end: no target
        key = "coefficients" if modality == "coefficients" else "frames"
        assert item[key].shape[0] == 16
    alpha, valid = coefficients["u1"]["u1_AU_1_0"]
    item = ClipDataset([s for s in samples if s.recording_id == "u1_AU_1_0"], "coefficients", 16, "center")[0]
    np.testing.assert_array_equal(item["alpha_valid"][:12].numpy(), valid)
    np.testing.assert_array_equal(item["alpha"][:12].numpy(), np.where(valid[:, None], alpha, 0))
