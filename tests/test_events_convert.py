"""``facemorphic decode``: the ``.h5`` is opened by a maintained reader (evlib) and matches the reference
decode of a real recording; the help states the units and columns."""

from __future__ import annotations

import evlib
import h5py
import numpy as np
import pytest

from facemorphic.cli import build_parser, main

RECORDING = "evt3_1280x720_triggers_event_camera_codecs.raw"


@pytest.fixture(scope="module")
def decoded_h5(tmp_path_factory, shared_data):
    raw = shared_data / "events" / RECORDING
    out = tmp_path_factory.mktemp("decode") / "events.h5"
    assert main(["decode", str(raw), "--out", str(out), "--chunk-words", "20000"]) == 0
    return out, np.load(f"{raw}.reference.npy"), np.load(f"{raw}.reference_triggers.npy")


def test_h5_is_read_by_evlib_as_the_reference_decode(decoded_h5):
    out, reference, _ = decoded_h5
    table = evlib.load_events(str(out), sort=False).collect()
    assert len(table) == len(reference) == 82469
    # evlib reads events/t as a Duration in microseconds: the raw sensor time, unshifted
    np.testing.assert_array_equal(table["t"].dt.total_microseconds().to_numpy(), reference["t"])
    np.testing.assert_array_equal(table["x"].to_numpy(), reference["x"])
    np.testing.assert_array_equal(table["y"].to_numpy(), reference["y"])
    # evlib maps polarity 0/1 to -1/+1
    np.testing.assert_array_equal(table["polarity"].to_numpy(), np.where(reference["p"] == 1, 1, -1))


def test_h5_layout_columns_units_and_triggers(decoded_h5):
    out, reference, reference_triggers = decoded_h5
    with h5py.File(out, "r") as h5:
        assert sorted(h5) == ["events", "triggers"]
        assert sorted(h5["events"]) == ["p", "t", "x", "y"] and sorted(h5["triggers"]) == ["id", "p", "t"]
        for group, expected in (("events", reference), ("triggers", reference_triggers)):
            assert h5[group]["t"].attrs["unit"] == "us"
            for name in expected.dtype.names:
                column = h5[group][name]
                assert column.dtype == expected.dtype[name] and column.ndim == 1
                np.testing.assert_array_equal(column[()], expected[name])
        assert h5.attrs["format"] == "EVT3" and (h5.attrs["width"], h5.attrs["height"]) == (1280, 720)
    assert len(reference_triggers) == 2


def test_decode_help_states_units_and_columns():
    help_text = " ".join(build_parser("decode")._subparsers._group_actions[0].choices["decode"]
                         .format_help().split())
    assert "times are microseconds (us) of the raw sensor clock, not shifted to zero" in help_text
    for columns in ("t int64 (us), x uint16, y uint16, p uint8", "events/t int64 (us", "triggers/t",
                    "header t,x,y,p", "evlib.load_events(path)"):
        assert columns in help_text


def test_events_stage_logs_one_line_per_recording_and_no_bars_off_a_terminal(tmp_path, capsys):
    """Five RGB frames, events (k + 1 of them) in the windows of the first three only: the info line says
    5 frames, 6 events and 40% empty frames (the stream ends early, which is also warned about); stderr is
    not a terminal under pytest, so no tqdm bar."""
    import pandas as pd
    from media import write_jpeg_folder

    from facemorphic.events.evt3_writer import write_evt3
    from facemorphic.events.raw import EVENT_DTYPE
    from facemorphic.video import read_frame_times

    offset_us = 1_000_000
    rgb = write_jpeg_folder(tmp_path / "frames", np.arange(5) / 30, width=32, height=24)
    starts = offset_us + np.rint(read_frame_times(rgb) * 1e6).astype(np.int64)
    events = np.zeros(6, EVENT_DTYPE)
    events["t"] = [starts[0] + 10, starts[1] + 10, starts[1] + 20, starts[2] + 10, starts[2] + 20, starts[2] + 30]
    events["x"], events["y"], events["p"] = np.arange(6), 3, 1
    raw = tmp_path / "rec.raw"
    write_evt3(raw, events, 640, 360)
    pd.DataFrame({"recording_id": ["rec"], "user": ["u1"], "raw_path": [str(raw)], "rgb_path": [str(rgb)],
                  "event_offset_us": [offset_us]}).to_csv(tmp_path / "m.csv", index=False)
    assert main(["events", "--manifest", str(tmp_path / "m.csv"), "--out", str(tmp_path / "u1.h5")]) == 0
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if " INFO " in line and "rec: " in line]
    assert len(lines) == 1 and "rec: 5 frames, 6 events, 40.0% empty frames, " in lines[0]
    assert "\r" not in err and "rec/s" not in err
