"""Alignment of event frames to (jittered) RGB frames, the events HDF5 contract, and the CLIs."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pandas as pd
import pytest

from facemorphic.errors import FacemorphicError
from facemorphic.events.alignment import rgb_frame_windows
from facemorphic.events.evt3_writer import write_evt3
from facemorphic.events.raw import EVENT_DTYPE, read_events
from facemorphic.video import read_frame_times
from media import write_jpeg_folder

OFFSET_US = 2_345_678


def main(argv: list[str]) -> int:
    """Run ``facemorphic decode|events ARGS`` through the stage modules (the full CLI imports every stage)."""
    import argparse
    import importlib

    from facemorphic.cli import STAGES

    module = importlib.import_module(STAGES[argv[0]][0])
    parser = argparse.ArgumentParser()
    module.add_arguments(parser)
    try:
        return module.run(parser.parse_args(argv[1:]))
    except FacemorphicError:
        return 2


def test_windows_follow_jittered_rgb_times():
    times = np.array([0.0, 0.0331, 0.0669, 0.1, 0.1342])
    w = rgb_frame_windows(times, OFFSET_US)
    np.testing.assert_array_equal(w.starts, OFFSET_US + np.array([0, 33100, 66900, 100000, 134200]))
    median = int(np.rint(np.median(np.diff(times)) * 1e6))
    np.testing.assert_array_equal(w.ends, np.append(w.starts[1:], w.starts[-1] + median))
    sub = rgb_frame_windows(times, OFFSET_US, subwindows=4, accumulation_us=2000)
    assert len(sub) == 20 and sub.n_frames == 5
    np.testing.assert_array_equal(sub.starts[::4], w.starts)
    np.testing.assert_array_equal(sub.frame_ends, w.ends)
    np.testing.assert_array_equal(sub.starts[1:], sub.ends[:-1])
    np.testing.assert_array_equal(sub.visible, np.maximum(sub.starts, sub.ends - 2000))
    with pytest.raises(ValueError):
        rgb_frame_windows(times[::-1], 0)


def _recording(tmp_path, name: str, times: np.ndarray, n_event_frames: int, seed: int):
    """JPEG frames at ``times`` and a RAW with ``k + 1`` ON events at known pixels inside RGB frame k's
    window (for the first ``n_event_frames`` frames), plus OFF events just outside the windows."""
    rng = np.random.default_rng(seed)
    rgb = write_jpeg_folder(tmp_path / f"frames_{name}", times, width=32, height=24)
    times = read_frame_times(rgb)  # what the stage will see (microsecond names)
    starts = OFFSET_US + np.rint(times * 1e6).astype(np.int64)
    parts, expected = [np.array([(starts[0] - 5, 0, 0, 0)], EVENT_DTYPE)], []
    for k in range(n_event_frames):
        end = starts[k + 1] if k + 1 < len(starts) else starts[k] + 33_333
        ev = np.zeros(k + 1, EVENT_DTYPE)
        ev["t"] = np.sort(rng.integers(starts[k], end, k + 1))
        pix = rng.choice(640 * 360, k + 1, replace=False)
        ev["x"], ev["y"], ev["p"] = pix % 640, pix // 640, 1
        parts.append(ev)
        expected.append(ev)
    raw = tmp_path / f"event_{name}.raw"
    events = np.concatenate(parts)
    write_evt3(raw, events[np.argsort(events["t"], kind="stable")], 640, 360)
    return rgb, raw, expected


def test_events_file_contract(tmp_path):
    rng = np.random.default_rng(0)
    times_a = np.cumsum(np.r_[0, 1 / 30 + rng.uniform(-0.004, 0.004, 7)])  # 8 jittered frames
    times_b = np.arange(6) / 30
    rgb_a, raw_a, expected_a = _recording(tmp_path, "a", times_a, 8, 1)
    times_a = read_frame_times(rgb_a)
    rgb_b, raw_b, _ = _recording(tmp_path, "b", times_b, 3, 2)  # events stop after frame 2
    bad = tmp_path / "bad.raw"
    bad.write_bytes(b"% evt 4.0\n% end\n\x00\x00\x00\x00")
    manifest = pd.DataFrame({
        "recording_id": ["rec_a", "rec_b", "rec_bad"], "user": "u1",
        "raw_path": [raw_a.name, raw_b.name, bad.name], "rgb_path": [rgb_a.name, rgb_b.name, rgb_a.name],
        "event_offset_us": OFFSET_US,
    })
    manifest.to_csv(tmp_path / "manifest.csv", index=False)
    out = tmp_path / "events" / "u1.h5"
    assert main(["events", "--manifest", str(tmp_path / "manifest.csv"), "--user", "u1", "--out", str(out),
                 "--data-root", str(tmp_path), "--representation", "histogram", "--width", "320",
                 "--height", "180"]) == 0
    with h5py.File(out) as h5:
        assert sorted(h5) == ["rec_a", "rec_b"]
        failures = json.loads(h5.attrs["failures"])
        assert list(failures) == ["rec_bad"] and "not supported" in failures["rec_bad"]
        group = h5["rec_a"]
        frames = group["frames"][()]
        assert frames.dtype == np.uint8 and frames.shape == (8, 2, 180, 320)
        starts = OFFSET_US + np.rint(times_a * 1e6).astype(np.int64)
        np.testing.assert_array_equal(group["t_end_us"][()], np.append(starts[1:], starts[-1] + int(
            np.rint(np.median(np.diff(times_a)) * 1e6))))
        for k, ev in enumerate(expected_a):
            assert frames[k, 0].sum() == 0  # the OFF event before frame 0 is outside every window
            assert frames[k, 1].sum() == k + 1
            assert np.all(frames[k, 1, ev["y"] // 2, ev["x"] // 2] >= 1)
        attrs = dict(group.attrs)
        assert attrs["representation"] == "histogram" and attrs["n_events"] == sum(range(1, 9))
        assert list(attrs["sensor_size"]) == [640, 360] and list(attrs["frame_size"]) == [320, 180]
        assert attrs["window_us"] == int(np.median(np.diff(starts)))
        assert not attrs["truncated"] and not attrs["events_end_before_rgb"]
        b = h5["rec_b"]
        assert b.attrs["events_end_before_rgb"] and b.attrs["n_empty_frames"] == 3
        assert b["frames"][3:].sum() == 0 and b["frames"].shape[0] == 6


def test_periodic_subwindows_and_truncated_flag(tmp_path):
    times = np.arange(4) / 30
    rgb, raw, _ = _recording(tmp_path, "s", times, 4, 3)
    data = raw.read_bytes()
    raw.write_bytes(data[:-1])  # cut inside the last word
    manifest = pd.DataFrame({"recording_id": ["r"], "user": "u2", "raw_path": [str(raw)], "rgb_path": [str(rgb)],
                             "event_offset_us": [OFFSET_US]})
    manifest.to_csv(tmp_path / "m.csv", index=False)
    out = tmp_path / "u2.h5"
    assert main(["events", "--manifest", str(tmp_path / "m.csv"), "--out", str(out), "--subwindows", "2",
                 "--palette", "gray", "--width", "0", "--height", "0"]) == 0
    with h5py.File(out) as h5:
        group = h5["r"]
        assert group["frames"].shape == (4, 2, 360, 640)  # width and height 0: the sensor's size
        assert group.attrs["truncated"] and group.attrs["subwindows"] == 2
        assert group.attrs["channels_per_subwindow"] == 1
        assert group.attrs["representation"] == "periodic_frame"
        frames = group["frames"][()]
        assert set(np.unique(frames)) <= {0, 128, 255}
        assert (frames == 255).sum() == group.attrs["n_events"] == sum(range(1, 4)) + 3  # last event cut off


def test_options_json_flags_and_every_recording_failing(tmp_path):
    """--options JSON (as the workflow passes a config block) under explicit flags; exit 1 when nothing is
    written, 2 for a bad option, and the events reader refuses what the writer did not write."""
    from facemorphic.events.io import open_events_file, read_event_frames
    from facemorphic.events.stage import run_events
    from facemorphic.events.options import EventsOptions
    from facemorphic.options import build_options

    times = np.arange(3) / 30
    rgb, raw, expected = _recording(tmp_path, "o", times, 3, 4)
    bad = tmp_path / "bad.raw"
    bad.write_bytes(b"% evt 4.0\n% end\n\x00\x00\x00\x00")
    pd.DataFrame({"recording_id": ["good", "bad"], "user": ["u3", "u4"], "raw_path": [str(raw), str(bad)],
                  "rgb_path": [str(rgb), str(rgb)], "event_offset_us": OFFSET_US}).to_csv(tmp_path / "m.csv",
                                                                                          index=False)
    out = tmp_path / "u3.h5"
    block = '{"representation": "tbr", "bins": 4, "width": 64, "height": 36, "subwindows": 3}'
    assert main(["events", "--manifest", str(tmp_path / "m.csv"), "--user", "u3", "--out", str(out),
                 "--options", block, "--bins", "2"]) == 0
    with open_events_file(out) as h5:
        record = read_event_frames(h5, "good")
        assert (record.representation, record.subwindows, record.channels_per_subwindow) == ("tbr", 3, 1)
        assert record.attrs["bins"] == 2 and record.frame_size == (64, 36) and record.sensor_size == (640, 360)
        # TBR with 2 bins per sub-window: each of frame k's k+1 events sets one bit in one sub-window
        per_frame = (np.asarray(record.frames[()]) > 0).sum(axis=(1, 2, 3))
        assert list(per_frame) == [len(ev) for ev in expected]
    result = run_events(tmp_path / "m.csv", tmp_path / "u4.h5", build_options(EventsOptions, {}), user="u4")
    assert result.written == [] and list(result.failures) == ["bad"]
    assert main(["events", "--manifest", str(tmp_path / "m.csv"), "--user", "u4", "--out",
                 str(tmp_path / "u4.h5")]) == 1
    assert main(["events", "--manifest", str(tmp_path / "m.csv"), "--out", str(tmp_path / "x.h5"),
                 "--options", '{"representation": "tbr", "bins": 9}']) == 2
    assert main(["events", "--manifest", str(tmp_path / "m.csv"), "--out", str(tmp_path / "x.h5"),
                 "--width", "0", "--height", "100"]) == 2  # a height without a width to derive it from
    assert not (tmp_path / "x.h5").exists()


@pytest.mark.parametrize("suffix", [".npy", ".csv", ".h5"])
def test_decode_cli_outputs(tmp_path, shared_data, suffix):
    raw = shared_data / "events" / "evt3_1280x720_triggers_event_camera_codecs.raw"
    out = tmp_path / f"events{suffix}"
    assert main(["decode", str(raw), "--out", str(out), "--chunk-words", "20000"]) == 0
    reference = np.load(f"{raw}.reference.npy")
    reference_triggers = np.load(f"{raw}.reference_triggers.npy")
    if suffix == ".npy":
        events, triggers = np.load(out), np.load(tmp_path / "events.triggers.npy")
    elif suffix == ".csv":
        table = pd.read_csv(out)
        assert list(table.columns) == ["t", "x", "y", "p"]
        events = np.zeros(len(table), EVENT_DTYPE)
        for name in EVENT_DTYPE.names:
            events[name] = table[name]
        trig = pd.read_csv(tmp_path / "events.triggers.csv")
        triggers = np.array(list(zip(trig["t"], trig["id"], trig["p"])), reference_triggers.dtype)
    else:
        with h5py.File(out) as h5:
            events = np.zeros(h5["events/t"].shape[0], EVENT_DTYPE)
            for name in EVENT_DTYPE.names:
                events[name] = h5["events"][name][()]
            triggers = np.zeros(h5["triggers/t"].shape[0], reference_triggers.dtype)
            for name in reference_triggers.dtype.names:
                triggers[name] = h5["triggers"][name][()]
            assert h5.attrs["format"] == "EVT3" and h5.attrs["width"] == 1280
    np.testing.assert_array_equal(events, reference)
    np.testing.assert_array_equal(triggers, reference_triggers)


def test_decode_cli_bad_header_is_one_line_error(tmp_path, capsys):
    bad = tmp_path / "bad.raw"
    bad.write_bytes(b"% just text\n% end\n" + b"\x00" * 8)
    assert main(["decode", str(bad), "--out", str(tmp_path / "x.npy")]) == 2
    assert not (tmp_path / "x.npy").exists()
    events, _ = read_events(_small_raw(tmp_path))
    assert len(events) == 1


def _small_raw(tmp_path):
    path = tmp_path / "one.raw"
    write_evt3(path, np.array([(100, 1, 2, 1)], EVENT_DTYPE), 64, 64)
    return path
