"""File contracts between stages, round trip: each file written by its stage's writer and read by the next
stage through the writer's own package's reader.

manifest -> events, landmarks, shards; events -> shards for every representation, with one and with two
sub-windows per frame (the shard's values against the documented 3-channel mapping, written out slowly
here, of the event file's values, which are checked against :func:`render` of the known events);
landmarks -> fitting; coefficients -> shards. Small generated recordings (tests/media.py) keep it fast.
"""

from __future__ import annotations

import h5py
import numpy as np
import pandas as pd
import pytest

from facemorphic.dataset.manifest import MANIFEST_COLUMNS, PER_USER_COLUMNS, read_manifest, write_manifest
from facemorphic.errors import InputFileError
from facemorphic.events.alignment import rgb_frame_windows
from facemorphic.events.io import open_events_file, read_event_frames
from facemorphic.events.options import EventsOptions
from facemorphic.events.representations import REPRESENTATIONS, render
from facemorphic.events.stage import run_events
from facemorphic.fitting.io import iter_landmark_recordings, read_coefficients, write_coefficients
from facemorphic.fitting.recording import RecordingFit
from facemorphic.landmarks.io import read_landmark_track, write_track_group
from facemorphic.landmarks.pipeline import read_manifest_rows
from facemorphic.landmarks.tracking import LandmarkTrack
from facemorphic.options import build_options
from facemorphic.shards import ShardsOptions, list_samples, run_shards
from facemorphic.video import read_frame_times

from media import random_events, write_evt3_simple, write_mp4

SENSOR = (64, 48)
FRAME_SIZE = (32, 24)  # events drawn at half the sensor size
SHARD_SIZE = 8  # centre crop 24x24 of 32x24, then exact 3x3 block means
N_FRAMES = 4
K_AU = 6
CASES = [(name, subwindows) for name in REPRESENTATIONS for subwindows in (1, 2)]


def manifest_row(rid: str, user: str, raw, rgb, split: str = "train") -> dict:
    row = {column: 0 for column in MANIFEST_COLUMNS}
    row.update(recording_id=rid, user=user, task="au", au=12, repetition=1, sentence="", rgb_path=str(rgb),
               raw_path=str(raw), split=split, rgb_frames=N_FRAMES, rgb_fps=30.0, rgb_width=64, rgb_height=48,
               event_width=SENSOR[0], event_height=SENSOR[1], duration_s=N_FRAMES / 30, event_offset_us=0,
               event_format="EVT3", offset_source="first_event_guess")
    return row


def test_manifest_round_trip_and_every_stage_reads_it_by_user(tmp_path):
    rows = [manifest_row("0042", "007", "a.raw", "a.mp4"), manifest_row("u2_AU_FREE_1", "u2", "b.raw", "b.mp4")]
    rows[1].update(task="reading", au=0, sentence="12")
    table = pd.DataFrame(rows)
    write_manifest(table, tmp_path / "manifest.csv")
    back = read_manifest(tmp_path / "manifest.csv", MANIFEST_COLUMNS)
    assert list(back.columns) == MANIFEST_COLUMNS
    assert list(back["recording_id"]) == ["0042", "u2_AU_FREE_1"] and list(back["user"]) == ["007", "u2"]
    assert list(back["sentence"]) == ["", "12"] and list(back["au"]) == [12, 0]  # digits stay text where text
    pd.testing.assert_frame_equal(back, table, check_dtype=False)
    write_manifest(table.drop(columns="split"), tmp_path / "u.csv")  # the per-user form has no split
    assert list(read_manifest(tmp_path / "u.csv").columns) == PER_USER_COLUMNS
    landmarks_rows = read_manifest_rows(tmp_path / "manifest.csv", user="007")  # the landmarks stage's read
    assert list(landmarks_rows["recording_id"]) == ["0042"]
    with pytest.raises(InputFileError, match="no recording of user 'u9'"):
        read_manifest(tmp_path / "manifest.csv", user="u9")
    with pytest.raises(InputFileError, match=r"lacks column\(s\) \['split'\]"):
        read_manifest(tmp_path / "u.csv", MANIFEST_COLUMNS)
    pd.concat([table, table.iloc[:1]]).to_csv(tmp_path / "twice.csv", index=False)
    with pytest.raises(InputFileError, match="repeats recording_id"):
        read_manifest(tmp_path / "twice.csv")


def slow_three_channels(frame: np.ndarray, subwindows: int, channels: int) -> np.ndarray:
    """The mapping documented in facemorphic.shards.frames, for one frame [S*C, h, w], channel by channel."""
    def by_count(planes):
        k = len(planes)
        if k == 1:
            return [planes[0]] * 3
        if k == 2:
            return [planes[0], planes[1], (planes[0].astype(int) + planes[1]) // 2]
        if k == 3:
            return planes
        groups = np.array_split(np.arange(k), 3)
        return [np.round(np.mean([planes[i].astype(float) for i in group], axis=0)) for group in groups]

    planes = [frame[i] for i in range(subwindows * channels)]
    if subwindows > 1:
        planes = [np.round(np.mean([planes[s * channels + c].astype(float) for c in range(channels)], axis=0))
                  for s in range(subwindows)]
    return np.stack(by_count(planes)).astype(np.uint8)


def block_means(frames: np.ndarray) -> np.ndarray:
    """Centre crop 24x24 of [T, K, 24, 32] and 3x3 block means, rounded (no ties: sums of 9 values)."""
    crop = frames[:, :, :, 4:28].astype(float)
    t, k = crop.shape[:2]
    return np.round(crop.reshape(t, k, SHARD_SIZE, 3, SHARD_SIZE, 3).mean(axis=(3, 5))).astype(np.uint8)


@pytest.fixture(scope="module")
def upstream(tmp_path_factory):
    """One recording (EVT3 + MP4) per (representation, sub-windows) case, each its own user; its events
    file written by run_events; a coefficients file per user written by write_coefficients."""
    root = tmp_path_factory.mktemp("contracts")
    events = random_events(600, 0, int(N_FRAMES / 30 * 1e6), seed=3, width=SENSOR[0], height=SENSOR[1])
    raw = write_evt3_simple(root / "event_1.raw", events, *SENSOR)
    rgb = write_mp4(root / "frames_1.mp4", N_FRAMES, 64, 48)
    rows = [manifest_row(f"{name}_{s}_AU_12_1", f"{name}_{s}", raw, rgb) for name, s in CASES]
    write_manifest(pd.DataFrame(rows), root / "manifest.csv")
    rng = np.random.default_rng(4)
    coefficients = {}
    for name, subwindows in CASES:
        user, rid = f"{name}_{subwindows}", f"{name}_{subwindows}_AU_12_1"
        options = build_options(EventsOptions, {"representation": name, "subwindows": subwindows,
                                                "width": FRAME_SIZE[0], "height": FRAME_SIZE[1],
                                                "tau_us": 5000.0, "bins": 5})
        result = run_events(root / "manifest.csv", root / "events" / f"{user}.h5", options, user=user)
        assert result.written == [rid] and result.failures == {}
        valid = rng.random(N_FRAMES) > 0.3
        alpha = np.where(valid[:, None], rng.normal(size=(N_FRAMES, K_AU)), np.nan).astype(np.float32)
        fit = RecordingFit(alpha, rng.normal(size=3).astype(np.float32), rng.normal(size=(N_FRAMES, 2, 4)),
                           rng.random(N_FRAMES), valid, int(np.argmax(valid)))
        write_coefficients(root / "coefficients" / f"{user}.h5", {rid: fit}, {"lambda_au": 1.0})
        coefficients[rid] = fit
    return root, events, coefficients


def test_events_file_holds_the_subwindows_in_time_order(upstream):
    """Channels s*C .. s*C+C-1 of frame k are sub-window s of RGB frame k, as the layout attrs say."""
    root, events, _ = upstream
    times = read_frame_times(root / "frames_1.mp4")
    for name, subwindows in CASES:
        with open_events_file(root / "events" / f"{name}_{subwindows}.h5") as h5:
            record = read_event_frames(h5, f"{name}_{subwindows}_AU_12_1")
            rep = REPRESENTATIONS[name](**{k: v for k, v in {"tau_us": 5000.0, "bins": 5}.items()
                                           if k in REPRESENTATIONS[name].parameters})
            assert (record.representation, record.subwindows) == (name, subwindows)
            assert record.channels_per_subwindow == rep.channels and record.frame_size == FRAME_SIZE
            windows = rgb_frame_windows(times, 0, subwindows)
            np.testing.assert_array_equal(record.t_end_us, windows.frame_ends)
            view = record.subwindow_view()
            for j in range(len(windows)):
                k, s = divmod(j, subwindows)
                expected = render(rep, events, int(windows.starts[j]), int(windows.ends[j]), SENSOR, FRAME_SIZE)
                np.testing.assert_array_equal(view[k, s], expected, err_msg=f"{name} S={subwindows} window {j}")


def test_shards_map_every_representation_and_subwindow_layout_as_documented(upstream, tmp_path):
    root, _, coefficients = upstream
    options = build_options(ShardsOptions, {"size": SHARD_SIZE, "modalities": ["events"]})
    result = run_shards(root / "manifest.csv", root / "events", root / "coefficients", tmp_path / "shards",
                        options, splits=("train",))
    assert result.failures == {} and len(result.written["train"]) == len(CASES)
    samples = {s.recording_id: s for s in list_samples(tmp_path / "shards" / "train")}
    for name, subwindows in CASES:
        user, rid = f"{name}_{subwindows}", f"{name}_{subwindows}_AU_12_1"
        with open_events_file(root / "events" / f"{user}.h5") as h5:
            record = read_event_frames(h5, rid)
            stored = np.asarray(record.frames[()])
            channels = record.channels_per_subwindow
        expected = np.stack([slow_three_channels(frame, subwindows, channels) for frame in block_means(stored)])
        with h5py.File(samples[rid].path, "r") as file:
            group = file[rid]
            np.testing.assert_array_equal(group["events"][()], expected, err_msg=f"{name} S={subwindows}")
            assert (group.attrs["event_subwindows"], group.attrs["event_channels_per_subwindow"]) == (
                subwindows, channels)
            # coefficients -> shards: the fit as written, zero where invalid
            fit = coefficients[rid]
            np.testing.assert_array_equal(group["alpha_valid"][()], fit.valid)
            np.testing.assert_array_equal(group["alpha_au"][()], np.where(fit.valid[:, None], fit.alpha_au, 0))


def test_shards_refuse_an_events_file_without_its_layout(upstream, tmp_path):
    """An events group lacking the sub-window attrs is skipped with the reason, never guessed."""
    root, *_ = upstream
    events_dir = tmp_path / "events"
    events_dir.mkdir()
    user, rid = "histogram_2", "histogram_2_AU_12_1"
    with h5py.File(root / "events" / f"{user}.h5", "r") as source, h5py.File(events_dir / f"{user}.h5", "w") as copy:
        source.copy(rid, copy)
        del copy[rid].attrs["subwindows"]
    manifest = read_manifest(root / "manifest.csv", user=user)
    write_manifest(manifest, tmp_path / "manifest.csv")
    result = run_shards(tmp_path / "manifest.csv", events_dir, root / "coefficients", tmp_path / "shards",
                        build_options(ShardsOptions, {"size": SHARD_SIZE, "modalities": ["events"]}),
                        splits=("train",))
    assert result.written == {} and "lacks attr subwindows" in result.failures[rid]


def test_coefficients_round_trip(upstream):
    root, _, coefficients = upstream
    back = read_coefficients(root / "coefficients" / "tbr_2.h5")
    fit, read = coefficients["tbr_2_AU_12_1"], back["tbr_2_AU_12_1"]
    for field in ("alpha_au", "alpha_id", "camera", "residual_px"):
        np.testing.assert_array_equal(getattr(read, field), np.asarray(getattr(fit, field), np.float32))
    np.testing.assert_array_equal(read.valid, fit.valid)
    assert read.identity_frame == fit.identity_frame
    with pytest.raises(InputFileError, match="coefficients file not found"):
        read_coefficients(root / "coefficients" / "nobody.h5")


def test_landmarks_round_trip_into_the_fit_reader(tmp_path):
    rng = np.random.default_rng(5)
    tracks = {}
    path = tmp_path / "landmarks.h5"
    with h5py.File(path, "w") as handle:
        for rid, n in (("r2", 5), ("r1", 3)):
            track = LandmarkTrack.empty(n)
            track.valid[:] = rng.random(n) > 0.3
            track.landmarks[track.valid] = rng.uniform(0, 64, size=(track.valid.sum(), 68, 3))
            track.time_s[:] = np.arange(n) / 30
            write_track_group(handle, rid, track, {"backend": "truth"})
            tracks[rid] = track
        handle.create_group("broken").create_dataset("landmarks", data=np.zeros((2, 68, 3), np.float32))
    read = read_landmark_track(path, "r2")
    for field in ("landmarks", "valid", "time_s", "bbox", "score"):
        np.testing.assert_array_equal(getattr(read, field), getattr(tracks["r2"], field))
    with pytest.raises(InputFileError, match="broken lacks bbox"):
        list(iter_landmark_recordings(path))
    with h5py.File(path, "a") as handle:
        del handle["broken"]
    got = list(iter_landmark_recordings(path))
    assert [rid for rid, *_ in got] == ["r1", "r2"]  # recording-id order
    for rid, landmarks, valid in got:
        np.testing.assert_array_equal(landmarks, tracks[rid].landmarks)
        np.testing.assert_array_equal(valid, tracks[rid].valid)
