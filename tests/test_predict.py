"""``facemorphic predict`` on a tiny trained run: real Prophesee RAW files and a hand-encoded RAW with known
events. The frames must be the events stage's frames (``write_recording``) through the shards mapping,
the probabilities the network's own on those frames, and the video must decode to the expected frames."""

from __future__ import annotations

import argparse
import json

import av
import h5py
import numpy as np
import pandas as pd
import pytest
import torch

from facemorphic import ACTION_UNITS
from facemorphic.errors import FacemorphicError
from facemorphic.events.options import EventsOptions
from facemorphic.events.stage import write_recording
from facemorphic.morphable.model import MorphableModel, save_model
from facemorphic.predict.cli import add_arguments, run
from facemorphic.predict.frames import event_frame_blocks, model_event_frames
from facemorphic.predict.infer import PROBABILITY_COLUMNS, alpha_columns
from facemorphic.predict.options import PredictOptions
from facemorphic.predict.recording import predict_recording
from facemorphic.predict.trained import load_trained_run
from facemorphic.shards.frames import events_to_three_channels, resize_frames
from facemorphic.shards.io import SHARD_FORMAT, write_sample
from facemorphic.shards.toy import toy_sample
from facemorphic.training import RunConfig, train_run
from media import EVENT_DTYPE, write_evt3_simple, write_mp4

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SIZE, CLIP, K = 32, 6, 8
EVENTS = EventsOptions(width=160)  # periodic_frame, S = 1, C = 3: the layout the shards below record
TRIGGER_RAW = "events/evt3_1280x720_triggers_event_camera_codecs.raw"


def write_shards(root, counts: dict[str, int], seed: int = 0) -> None:
    """Learnable toy samples in the shard format, with the event layout a periodic_frame events stage
    would record (the toy writer's own samples say ``toy``)."""
    rng = np.random.default_rng(seed)
    for split, count in counts.items():
        path = root / split / "shard-0.h5"
        path.parent.mkdir(parents=True)
        with h5py.File(path, "w") as file:
            file.attrs.update(format=SHARD_FORMAT, split=split, size=SIZE, crop="center", modalities="events,rgb")
            for i in range(count):
                label = i % 4
                arrays = toy_sample(label, 8, SIZE, rng, n_coefficients=K)
                write_sample(file, f"{split}-{i}", dict(
                    recording_id=f"{split}-{i}", user="u", au=ACTION_UNITS[label], label=label, split=split,
                    n_frames=8, event_representation="periodic_frame", event_subwindows=1,
                    event_channels_per_subwindow=3, event_channels=3), arrays)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("predict")
    write_shards(root / "shards", {"train": 8, "test": 4})
    train_run(RunConfig(shards_dir=str(root / "shards"), out_dir=str(root / "run"), model="resnet18_lstm",
                        modality="events", experiment="toy", epochs=1, batch_size=4, clip_length=CLIP,
                        num_workers=0, lambda_alpha=0.5, val_fraction=0.0))
    return root


def stage_model_frames(raw, windows_times_s, offset_us) -> np.ndarray:
    """The events stage's frames for these RGB times, through the shards stage's mapping."""
    with h5py.File("stage.h5", "w", driver="core", backing_store=False) as h5:
        record = write_recording(h5, "rec", raw, windows_times_s, offset_us, EVENTS)
        frames = record.frames[()]
    return events_to_three_channels(resize_frames(frames, SIZE, "center"), 1, 3)


def network_window_probabilities(module, frames: np.ndarray, starts) -> np.ndarray:
    """Softmax of the network on each window of ``frames`` (last frame repeated past the end)."""
    n = len(frames)
    clips = torch.stack([torch.from_numpy(frames[np.minimum(np.arange(s, s + CLIP), n - 1)]) for s in starts])
    with torch.no_grad():
        logits, _ = module.model(clips)
    return torch.softmax(logits.double(), dim=1).numpy()


def test_real_recording_frames_and_probabilities(trained, shared_data):
    raw = shared_data / TRIGGER_RAW
    reference = np.load(str(raw) + ".reference.npy")
    run_folder = load_trained_run(trained / "run")
    options = PredictOptions(stride=2)
    result = predict_recording(run_folder, raw, options, EVENTS)
    table = result.table

    first, last = int(reference["t"][0]), int(reference["t"].max())
    period = 1e6 / 30
    n_expected = int((last - first) // period) + 1
    while first + int(np.rint(n_expected * period)) <= last:
        n_expected += 1
    assert len(table) == n_expected == result.windows.n_frames
    assert table["time_us"].iloc[0] == first + int(np.rint(period))
    assert np.all(np.diff(table["time_us"]) > 0)
    assert list(table.columns) == ["time_us", *PROBABILITY_COLUMNS, *alpha_columns(K)]
    np.testing.assert_allclose(table[PROBABILITY_COLUMNS].sum(axis=1), 1.0, atol=1e-9)

    stage = stage_model_frames(raw, np.arange(n_expected) / 30, first)
    ours = np.concatenate(list(model_event_frames(event_frame_blocks(raw, result.windows, EVENTS), SIZE,
                                                  "center", 1, 3)))
    np.testing.assert_array_equal(ours, stage)
    assert stage.any(axis=(1, 2, 3)).sum() > n_expected // 2  # real events drawn, not blank frames

    starts = result.prediction.window_starts
    assert starts[0] == 0 and starts[-1] == n_expected - CLIP and np.all(np.diff(starts) <= 2)
    direct = network_window_probabilities(run_folder.module, stage, starts)
    np.testing.assert_allclose(result.prediction.window_probabilities, direct, rtol=1e-4, atol=1e-6)
    # per frame: the mean over the windows containing the frame (slow obvious version)
    for k in (0, n_expected // 2, n_expected - 1):
        covering = [i for i, s in enumerate(starts) if s <= k < s + CLIP]
        np.testing.assert_allclose(table[PROBABILITY_COLUMNS].iloc[k], direct[covering].mean(axis=0), atol=1e-5)


def test_short_real_recording_is_one_padded_window(trained, shared_data):
    raw = shared_data / "events" / "evt3_gen41_1280x720_pedestrians_5000ev.raw"  # 45 ms: 2 frames < one clip
    run_folder = load_trained_run(trained / "run")
    result = predict_recording(run_folder, raw, PredictOptions(), EVENTS)
    assert len(result.table) == 2 and result.prediction.window_starts == [0]
    stage = stage_model_frames(raw, np.arange(2) / 30, int(np.load(str(raw) + ".reference.npy")["t"][0]))
    direct = network_window_probabilities(run_folder.module, stage, [0])[0]
    for k in range(2):
        np.testing.assert_allclose(result.table[PROBABILITY_COLUMNS].iloc[k], direct, atol=1e-5)


def tiny_morphable(n_coefficients: int) -> MorphableModel:
    """A flat 6x6 vertex grid facing +z with random AU displacement fields."""
    ys, xs = np.mgrid[0:6, 0:6]
    template = np.stack([xs.ravel() * 0.02, ys.ravel() * 0.02, np.zeros(36)], axis=1)
    faces = [[r * 6 + c, r * 6 + c + 1, (r + 1) * 6 + c] for r in range(5) for c in range(5)]
    faces += [[r * 6 + c + 1, (r + 1) * 6 + c + 1, (r + 1) * 6 + c] for r in range(5) for c in range(5)]
    rng = np.random.default_rng(0)
    return MorphableModel(template, np.array(faces), np.arange(68) % 50, np.tile([1.0, 0, 0], (68, 1)),
                          rng.normal(0, 0.01, (108, 2)), np.ones(2), rng.normal(0, 0.01, (108, n_coefficients)),
                          np.ones(n_coefficients))


def synthetic_events(offset_us: int, n_frames: int) -> np.ndarray:
    """A 20x20 pixel block of ON events in the middle of RGB frame k for every even k, nothing else."""
    rows = []
    for k in range(0, n_frames, 2):
        t = offset_us + int(np.rint(k / 30 * 1e6)) + 10_000
        for i in range(400):
            rows.append((t + i, 630 + i % 20, 350 + i // 20, 1))
    return np.array(rows, dtype=EVENT_DTYPE)


def test_cli_with_rgb_video_and_known_events(trained, tmp_path):
    n_frames, offset = 14, 2_000_000
    raw = write_evt3_simple(tmp_path / "rec.raw", synthetic_events(offset, n_frames))
    rgb = write_mp4(tmp_path / "rec.mp4", n_frames, width=64, height=48)
    model_path = tmp_path / "model.h5"
    save_model(tiny_morphable(K), model_path)
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    out_csv = tmp_path / "pred.csv"
    assert run(parser.parse_args([
        "--run", str(trained / "run"), "--raw", str(raw), "--rgb", str(rgb), "--event-offset-us", str(offset),
        "--events-options", json.dumps({"width": 160}), "--out-csv", str(out_csv), "--video",
        str(tmp_path / "fig3.mp4"), "--model", str(model_path), "--video-height", "96", "--stride", "1"])) == 0

    table = pd.read_csv(out_csv)
    assert len(table) == n_frames
    starts = offset + np.rint(np.arange(n_frames) / 30 * 1e6).astype(np.int64)  # RGB frame k on the event clock
    np.testing.assert_array_equal(table["time_us"], np.append(starts[1:], starts[-1] + 33333))
    np.testing.assert_allclose(table[PROBABILITY_COLUMNS].sum(axis=1), 1.0, atol=1e-6)
    windows_frames = stage_model_frames(raw, np.arange(n_frames) / 30, offset)
    decision = json.loads((tmp_path / "pred.json").read_text())
    assert decision["n_frames"] == n_frames and decision["n_windows"] == n_frames - CLIP + 1
    mean = network_window_probabilities(load_trained_run(trained / "run").module, windows_frames,
                                        range(n_frames - CLIP + 1)).mean(axis=0)
    assert decision["au"] == ACTION_UNITS[int(mean.argmax())]
    assert decision["probability"] == pytest.approx(mean.max(), abs=1e-5)

    drawn = windows_frames.any(axis=(1, 2, 3)) & (windows_frames != windows_frames[:, :, :1, :1]).any(axis=(1, 2, 3))
    np.testing.assert_array_equal(drawn, np.arange(n_frames) % 2 == 0)  # the block only in the even frames

    with av.open(str(tmp_path / "fig3.mp4")) as container:
        decoded = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    event_w = round(160 * 96 / 90) // 2 * 2  # 160x90 event frame; mesh 96x96; RGB 64x48 -> 128x96
    assert len(decoded) == n_frames
    assert decoded[0].shape == (96 + 48, event_w + 96 + 128, 3)
    mesh = decoded[0][:96, event_w:event_w + 96].astype(int)
    assert (np.abs(mesh - mesh[0, 0]).sum(axis=2) > 60).mean() > 0.3  # the mesh covers the panel's middle


def test_refusals(trained, tmp_path, shared_data):
    raw = shared_data / TRIGGER_RAW
    run_folder = load_trained_run(trained / "run")
    with pytest.raises(FacemorphicError, match="voxel_grid"):
        predict_recording(run_folder, raw, PredictOptions(), EventsOptions(representation="voxel_grid"))
    summary = json.loads((trained / "run" / "run.json").read_text())
    coefficient_run = tmp_path / "coeff"
    coefficient_run.mkdir()
    (coefficient_run / "run.json").write_text(json.dumps({**summary, "model": "coeff_lstm",
                                                          "modality": "coefficients"}))
    with pytest.raises(FacemorphicError, match="landmarks"):
        load_trained_run(coefficient_run)
