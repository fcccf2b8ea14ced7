"""Sensor-true event-frame geometry and RGB/event synchronisation by external trigger edges.

Synthetic recordings carry a known offset and a known per-frame drift between the RGB timestamps and
the trigger edges (written with :func:`facemorphic.events.evt3_writer.write_evt3`); the real recording
with triggers is checked against its reference decode.
"""

from __future__ import annotations

import logging

import h5py
import numpy as np
import pytest

from facemorphic.dataset.ingest import ingest_user
from facemorphic.dataset.manifest import write_manifest
from facemorphic.errors import FacemorphicError, InputFileError
from facemorphic.events.alignment import trigger_frame_windows
from facemorphic.events.evt3_writer import write_evt3
from facemorphic.events.frames import event_frame_size
from facemorphic.events.options import EventsOptions
from facemorphic.events.raw import EVENT_DTYPE, TRIGGER_DTYPE
from facemorphic.events.stage import run_events
from facemorphic.events.triggers import read_trigger_edges, sync_to_triggers
from facemorphic.options import build_options
from facemorphic.video import read_frame_times
from media import write_jpeg_folder

OFFSET_US = 5_000_123
#: per-frame difference between trigger edge k and RGB time k (after the offset), microseconds
DRIFT_US = np.array([0, 3, -4, 9, 12, 5, 20, 11])
EXTRA_EDGES = 2  # the strobe runs on after the RGB recording stops
PULSE_US = 1000  # strobe pulse width: a falling edge follows every rising edge
REAL_TRIGGERS = "evt3_1280x720_triggers_event_camera_codecs.raw"


def _events_over(t0: int, t1: int, n: int, sensor: tuple[int, int], seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    ev = np.zeros(n, EVENT_DTYPE)
    ev["t"] = np.sort(rng.integers(t0, t1, n))
    ev["x"], ev["y"] = rng.integers(0, sensor[0], n), rng.integers(0, sensor[1], n)
    ev["p"] = 1
    return ev


def _strobed_recording(folder, sensor=(640, 480), n_edges=len(DRIFT_US) + EXTRA_EDGES, seed=0):
    """JPEG frames at jittered times and a RAW whose rising trigger edges are the RGB times shifted by
    OFFSET_US plus DRIFT_US (falling edges PULSE_US later); events spread over the whole recording.
    Returns (rgb_times_us as the probe reads them, rising edges, events)."""
    rng = np.random.default_rng(seed)
    n_frames = len(DRIFT_US)
    times = np.cumsum(np.r_[0, 1 / 30 + rng.uniform(-0.003, 0.003, n_frames - 1)])
    rgb = write_jpeg_folder(folder / "frames_1", times, width=32, height=24)
    rgb_us = np.rint(read_frame_times(rgb) * 1e6).astype(np.int64)
    period = int(np.median(np.diff(rgb_us)))
    nominal = np.r_[rgb_us, rgb_us[-1] + period * np.arange(1, EXTRA_EDGES + 1)]
    rising = (OFFSET_US + nominal + np.r_[DRIFT_US, DRIFT_US[-1] + np.zeros(EXTRA_EDGES, np.int64)])[:n_edges]
    triggers = np.zeros(2 * len(rising), TRIGGER_DTYPE)
    triggers["t"] = np.ravel(np.column_stack([rising, rising + PULSE_US]))
    triggers["p"] = np.tile([1, 0], len(rising))
    events = _events_over(OFFSET_US - 20_000, int(rising[-1]) + 40_000, 3000, sensor, seed + 1)
    write_evt3(folder / "event_1.raw", events, *sensor, triggers=triggers)
    return rgb_us, rising, events


def test_frame_size_keeps_the_sensor_aspect_ratio():
    assert event_frame_size((640, 480), 320, 0) == (320, 240)
    assert event_frame_size((1280, 720), 320, 0) == (320, 180)
    assert event_frame_size((640, 480), 0, 0) == (640, 480)
    assert event_frame_size((1280, 720), 100, 0) == (100, 56)  # 56.25 rounds down
    assert event_frame_size((1280, 720), 100, 57) == (100, 57)  # within 1 px of 56.25
    assert event_frame_size((1280, 720), 320, 181) == (320, 181)
    with pytest.raises(FacemorphicError, match="aspect ratio"):
        event_frame_size((640, 480), 320, 180)
    with pytest.raises(FacemorphicError, match="aspect ratio"):
        event_frame_size((1280, 720), 320, 183)
    with pytest.raises(FacemorphicError, match="sensor size unknown"):
        event_frame_size((0, 0), 320, 0)
    with pytest.raises(FacemorphicError, match="a height needs a width"):
        build_options(EventsOptions, {"width": 0, "height": 100})


def test_events_stage_keeps_4_3_and_16_9_and_fails_only_the_mismatched_recording(tmp_path):
    """Default options draw 640x480 at 320x240 and 1280x720 at 320x180; a set 320x180 fails the 4:3
    recording (recorded in the file's failures) and still writes the 16:9 one."""
    times = np.arange(3) / 30
    rows, expected = [], {}
    for name, sensor in (("vga", (640, 480)), ("hd", (1280, 720))):
        rgb = write_jpeg_folder(tmp_path / f"frames_{name}", times, width=32, height=24)
        events = _events_over(OFFSET_US, OFFSET_US + 90_000, 400, sensor, seed=len(name))
        write_evt3(tmp_path / f"event_{name}.raw", events, *sensor)
        rows.append({"recording_id": name, "user": "u", "raw_path": f"event_{name}.raw",
                     "rgb_path": rgb.name, "event_offset_us": OFFSET_US})
        expected[name] = events
    import pandas as pd

    pd.DataFrame(rows).to_csv(tmp_path / "m.csv", index=False)
    default = build_options(EventsOptions, {"representation": "histogram"})
    result = run_events(tmp_path / "m.csv", tmp_path / "default.h5", default, data_root=tmp_path)
    assert result.written == ["vga", "hd"] and result.failures == {}
    with h5py.File(tmp_path / "default.h5") as h5:
        for name, (sensor, size) in {"vga": ((640, 480), (320, 240)), "hd": ((1280, 720), (320, 180))}.items():
            frames = h5[name]["frames"][()]
            assert frames.shape == (3, 2, size[1], size[0]) and list(h5[name].attrs["frame_size"]) == list(size)
            # every event of frame 0 lands at (x * W // sensor_w, y * H // sensor_h): one scale for x and y
            ev = expected[name][expected[name]["t"] < OFFSET_US + 33_333]
            reference = np.zeros((size[1], size[0]), np.int64)
            np.add.at(reference, (ev["y"].astype(int) // (sensor[0] // size[0]),
                                  ev["x"].astype(int) // (sensor[0] // size[0])), 1)
            np.testing.assert_array_equal(frames[0, 1], np.minimum(reference, 255))
    squashed = build_options(EventsOptions, {"representation": "histogram", "width": 320, "height": 180})
    result = run_events(tmp_path / "m.csv", tmp_path / "set.h5", squashed, data_root=tmp_path)
    assert result.written == ["hd"] and list(result.failures) == ["vga"]
    assert "320x180" in result.failures["vga"] and "640x480" in result.failures["vga"]
    with h5py.File(tmp_path / "set.h5") as h5:
        assert sorted(h5) == ["hd"] and "aspect ratio" in h5.attrs["failures"]


def test_trigger_windows_match_a_slow_reimplementation():
    edges = np.array([1000, 34_400, 67_700, 101_050, 134_390])
    for n_frames, subwindows, accumulation in ((4, 1, 0), (5, 3, 5000), (3, 2, 0)):
        w = trigger_frame_windows(edges, n_frames, subwindows, accumulation)
        starts, ends = [], []
        for k in range(n_frames):
            end = edges[k + 1] if k + 1 < len(edges) else edges[k] + int(np.median(np.diff(edges)))
            for s in range(subwindows):
                starts.append(edges[k] + (end - edges[k]) * s // subwindows)
                ends.append(edges[k] + (end - edges[k]) * (s + 1) // subwindows)
        np.testing.assert_array_equal(w.starts, starts)
        np.testing.assert_array_equal(w.ends, ends)
        np.testing.assert_array_equal(w.visible, np.maximum(starts, np.array(ends) - accumulation)
                                      if accumulation else starts)
        assert w.n_frames == n_frames
    with pytest.raises(ValueError, match="5 trigger edges for 6 RGB frames"):
        trigger_frame_windows(edges, 6)


def test_ingest_and_events_follow_the_trigger_edges(tmp_path):
    """Known offset and drift: the manifest's offset is the first rising edge, its drift the largest
    |DRIFT_US[k] - DRIFT_US[0]|, and the event frames tile the edges, not the RGB times."""
    sensor = (640, 480)
    rgb_us, rising, events = _strobed_recording(tmp_path / "data" / "ann" / "AU_12", sensor)
    rows, rejects = ingest_user(tmp_path / "data", "ann", progress=False, sync="triggers")
    assert rejects.empty
    row = rows.iloc[0]
    assert row["offset_source"] == "triggers"
    assert row["event_offset_us"] == rising[0] == OFFSET_US
    assert row["trigger_count"] == len(DRIFT_US) + EXTRA_EDGES
    assert row["sync_drift_us_max"] == np.abs(DRIFT_US - DRIFT_US[0]).max() == 20
    write_manifest(rows, tmp_path / "ann.csv")
    options = build_options(EventsOptions, {"representation": "histogram"})
    result = run_events(tmp_path / "ann.csv", tmp_path / "ann.h5", options)
    assert result.written == [row["recording_id"]]
    n_frames = len(rgb_us)
    with h5py.File(tmp_path / "ann.h5") as h5:
        group = h5[row["recording_id"]]
        np.testing.assert_array_equal(group["t_end_us"][()], rising[1:n_frames + 1])
        assert group.attrs["window_source"] == "triggers" and group.attrs["event_offset_us"] == OFFSET_US
        # independent count: events per [edge k, edge k+1), against the ON histogram's total per frame
        per_window = np.histogram(events["t"], bins=rising[:n_frames + 1])[0]
        frames = group["frames"][()].astype(np.int64)
        np.testing.assert_array_equal(frames[:, 1].sum(axis=(1, 2)), per_window)
        # the RGB-time windows would differ: some event lies between RGB time k and edge k
        rgb_starts = OFFSET_US + rgb_us
        assert not np.array_equal(np.histogram(events["t"], bins=np.r_[rgb_starts, rising[n_frames]])[0],
                                  per_window)


def test_too_few_triggers_is_a_rejection_and_first_event_is_a_guess(tmp_path, caplog):
    root = tmp_path / "data"
    _, _, events = _strobed_recording(root / "bo" / "AU_1", n_edges=len(DRIFT_US) - 3)
    rows, rejects = ingest_user(root, "bo", progress=False, sync="triggers")
    assert rows.empty and len(rejects) == 1
    assert rejects.iloc[0]["reason"] == (f"RAW: {len(DRIFT_US) - 3} rising trigger edges for {len(DRIFT_US)} RGB "
                                         f"frames (sync 'triggers' needs one edge per frame)")
    with caplog.at_level(logging.WARNING, logger="facemorphic.dataset.ingest"):
        rows, rejects = ingest_user(root, "bo", progress=False)
    assert rejects.empty and rows.iloc[0]["offset_source"] == "first_event_guess"
    assert rows.iloc[0]["trigger_count"] == -1 and rows.iloc[0]["sync_drift_us_max"] == -1
    assert rows.iloc[0]["event_offset_us"] == events["t"][0]
    assert any("is a guess" in r.getMessage() and "bo_AU_1_1" in r.getMessage() for r in caplog.records)
    with pytest.raises(FacemorphicError, match="option 'sync'"):
        ingest_user(root, "bo", progress=False, sync="strobe")


def test_real_recording_triggers(shared_data, tmp_path):
    """The real EVT 3.0 recording holds one falling and one rising edge: rising edges only, one RGB frame
    aligns with it, two are too many; its event frame counts the reference events of that window."""
    raw = shared_data / "events" / REAL_TRIGGERS
    reference = np.load(f"{raw}.reference_triggers.npy")
    edges = read_trigger_edges(raw)
    np.testing.assert_array_equal(edges, reference["t"][reference["p"] == 1])
    assert len(edges) == 1 and len(reference) == 2
    synced = sync_to_triggers(np.array([0.0]), edges, raw)
    assert (synced.event_offset_us, synced.trigger_count, synced.drift_us_max) == (int(edges[0]), 1, 0)
    with pytest.raises(InputFileError, match="1 rising trigger edges for 2 RGB frames"):
        sync_to_triggers(np.array([0.0, 1 / 30]), edges, raw)

    folder = tmp_path / "data" / "cam" / "AU_4"
    folder.mkdir(parents=True)
    (folder / "event_1.raw").symlink_to(raw)
    write_jpeg_folder(folder / "frames_1", [0.0], width=32, height=24)
    rows, rejects = ingest_user(tmp_path / "data", "cam", progress=False, sync="triggers")
    assert rejects.empty and rows.iloc[0]["event_offset_us"] == edges[0]
    write_manifest(rows, tmp_path / "cam.csv")
    result = run_events(tmp_path / "cam.csv", tmp_path / "cam.h5",
                        build_options(EventsOptions, {"representation": "histogram", "width": 0}))
    assert result.failures == {}
    events = np.load(f"{raw}.reference.npy")
    window = events[(events["t"] >= edges[0]) & (events["t"] < edges[0] + 33_333)]
    with h5py.File(tmp_path / "cam.h5") as h5:
        group = h5[rows.iloc[0]["recording_id"]]
        assert group["frames"].shape == (1, 2, 720, 1280)
        assert group.attrs["n_events"] == len(window)
        reference_on = np.zeros((720, 1280), np.int64)
        on = window[window["p"] == 1]
        np.add.at(reference_on, (on["y"].astype(int), on["x"].astype(int)), 1)
        np.testing.assert_array_equal(group["frames"][0, 1], np.minimum(reference_on, 255))
