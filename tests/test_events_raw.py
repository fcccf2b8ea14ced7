"""RAW/DAT reading against Prophesee's reference decodes, probing, and bad input."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from facemorphic.errors import InputFileError
from facemorphic.events.raw import EVENT_DTYPE, RawReader, probe_raw, read_events, read_window
from media import evt3_header, random_events, write_evt3_simple

FILES = {
    "evt3_gen41_1280x720_expelliarmus_sample.raw": ("EVT3", 1280, 720),
    "evt3_gen41_1280x720_pedestrians_5000ev.raw": ("EVT3", 1280, 720),
    "evt2_gen3_640x480_expelliarmus_sample.raw": ("EVT2", 640, 480),
    "evt3_1280x720_triggers_event_camera_codecs.raw": ("EVT3", 1280, 720),
    "dat_atis_ncars_sample_tonic.dat": ("DAT", 0, 0),
}


@pytest.mark.parametrize("name", sorted(FILES))
@pytest.mark.parametrize("chunk_words", [1000, 1 << 22])
def test_reader_equals_reference(shared_data, name, chunk_words):
    path = shared_data / "events" / name
    reference = np.load(f"{path}.reference.npy")
    events, triggers = read_events(path, chunk_words=chunk_words)
    assert events.dtype == EVENT_DTYPE
    np.testing.assert_array_equal(events, reference)
    trigger_file = path.with_name(path.name + ".reference_triggers.npy")
    if trigger_file.exists():
        np.testing.assert_array_equal(triggers, np.load(trigger_file))
    else:
        assert len(triggers) == 0


@pytest.mark.parametrize("name", sorted(FILES))
def test_probe_header_and_first_event(shared_data, name):
    path = shared_data / "events" / name
    info = probe_raw(path)
    fmt, width, height = FILES[name]
    assert (info.format, info.width, info.height) == (fmt, width, height)
    assert info.first_event_us == int(np.load(f"{path}.reference.npy")["t"][0])
    assert not info.truncated
    with open(path, "rb") as fh:
        data = fh.read()
    assert info.header_bytes + info.data_bytes == len(data)
    assert data[info.header_bytes - 1:info.header_bytes] in (b"\n", b"\x00", b"\x08")


def test_evt2_without_geometry_uses_sensor_generation(shared_data):
    info = probe_raw(shared_data / "events" / "evt2_gen3_640x480_expelliarmus_sample.raw")
    assert "geometry" not in info.header and info.geometry_source == "sensor generation"


def test_read_window_matches_filter(shared_data):
    path = shared_data / "events" / "evt3_gen41_1280x720_expelliarmus_sample.raw"
    reference = np.load(f"{path}.reference.npy")
    t0, t1 = 11_720_000, 11_723_500
    window = read_window(path, t0, t1, chunk_words=2000)
    np.testing.assert_array_equal(window, reference[(reference["t"] >= t0) & (reference["t"] < t1)])


def test_truncated_file_keeps_events_before_cut(tmp_path, shared_data, caplog):
    source = shared_data / "events" / "evt3_gen41_1280x720_pedestrians_5000ev.raw"
    data = source.read_bytes()
    info = probe_raw(source)
    cut = info.header_bytes + 2 * 5000 + 1  # inside a word
    path = tmp_path / "cut.raw"
    path.write_bytes(data[:cut])
    whole, _ = read_events(source)
    reader = RawReader(path)
    events = np.concatenate([c.events for c in reader.chunks()])
    assert reader.truncated and probe_raw(path).truncated
    assert 0 < len(events) < len(whole)
    np.testing.assert_array_equal(events, whole[:len(events)])
    assert "truncated" in caplog.text


@pytest.mark.parametrize("content, reason", [
    (b"", "empty"),
    (b"% evt 2.1\n% end\n\x00\x00\x00\x00", "not supported"),
    (b"% date today\n% end\n\x00\x00", "no event format"),
    (b"% evt 3.0\n% geometry 1280x720\n% end\n", "no event data"),
    (b"% evt 3.0\n% geometry 1280x7", "header"),
    (b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, "no event format"),
])
def test_bad_files_are_named_errors(tmp_path, content, reason):
    path = tmp_path / "bad.raw"
    path.write_bytes(content)
    with pytest.raises(InputFileError) as info:
        probe_raw(path)
    assert str(path) in str(info.value) and reason in str(info.value)


def test_out_of_sensor_events_are_dropped_and_counted(tmp_path):
    events = random_events(3000, 1_000_000, 20_000, seed=3)
    body = write_evt3_simple(tmp_path / "full.raw", events).read_bytes()[len(evt3_header()):]
    small = tmp_path / "small.raw"
    small.write_bytes(evt3_header(640, 360) + body)
    reader = RawReader(small)
    decoded = np.concatenate([c.events for c in reader.chunks()])
    inside = (events["x"] < 640) & (events["y"] < 360)
    np.testing.assert_array_equal(decoded, events[inside])
    assert reader.n_outside == int((~inside).sum()) > 0


def test_events_before_first_time_high_are_dropped(tmp_path):
    # ADDR_Y, ADDR_X (no time base yet), then TIME_HIGH 5, ADDR_X: only the second event exists.
    words = np.array([0x0010, 0x2020, 0x8005, 0x6007, 0x0011, 0x2830], dtype="<u2")
    path = tmp_path / "early.raw"
    path.write_bytes(evt3_header() + words.tobytes())
    events, _ = read_events(path)
    assert events.tolist() == [((5 << 12) + 7, 0x30, 0x11, 1)]
    assert probe_raw(path).first_event_us == (5 << 12) + 7


@pytest.mark.parametrize("header, field", [
    (b"% evt 3.0\n% format EVT3;height=abc;width=1280\n% end\n", "'format' height"),
    (b"% evt 3.0\n% format EVT3;height=720;width=0\n% end\n", "'format' width"),
    (b"% evt 3.0\n% format EVT3;height=-720;width=1280\n% end\n", "'format' height"),
    (b"% evt 3.0\n% format EVT3;width=1280\n% end\n", "only one of width/height"),
    (b"% evt 3.0\n% format EVT3;height=720;width=99999999999999999999\n% end\n", "'format' width"),
    (b"% evt 3.0\n% geometry abcx720\n% end\n", "'geometry' width"),
    (b"% evt 3.0\n% geometry 1280x0\n% end\n", "'geometry' height"),
    (b"% evt 3.0\n% geometry 1280 by 720\n% end\n", "'geometry'"),
    (b"% Width 30O\n% Height 240\n", "'Width'"),
])
def test_bad_geometry_is_a_named_input_error(tmp_path, header, field):
    """ingest turns InputFileError(path, reason) into a rejection; a ValueError would abort the whole run."""
    path = tmp_path / ("bad.dat" if b"Width" in header else "bad.raw")
    path.write_bytes(header + (b"\x00\x08" if b"Width" in header else b"") + b"\x00" * 64)
    for read in (probe_raw, RawReader):
        with pytest.raises(InputFileError) as info:
            read(path)
        assert info.value.path == str(path) and field in info.value.reason


def test_header_line_without_newline_is_rejected_after_a_bounded_read(tmp_path):
    """A 512 MiB file whose '%' line never ends (sparse: costs no disk) must not be read into memory."""
    path = tmp_path / "endless.raw"
    with open(path, "wb") as fh:
        fh.write(b"% evt 3.0 ")
        fh.truncate(512 << 20)
    script = ("import resource, sys\n"
              "from facemorphic.errors import InputFileError\n"
              "from facemorphic.events.raw import probe_raw\n"
              "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
              "try:\n    probe_raw(sys.argv[1])\nexcept InputFileError as exc:\n    print(exc.reason)\n"
              "print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024)\n")
    proc = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    reason, peak_growth_mib = proc.stdout.strip().splitlines()
    assert "longer than 4096 bytes" in reason
    assert int(peak_growth_mib) < 64  # reading the line whole grew the process by over 1 GiB


def test_header_of_too_many_lines_is_rejected(tmp_path):
    path = tmp_path / "chatty.raw"
    path.write_bytes(b"% evt 3.0\n" + b"% comment padding padding\n" * 50_000 + b"% end\n" + b"\x00" * 64)
    with pytest.raises(InputFileError, match=r"chatty\.raw.*header is longer than"):
        probe_raw(path)


@pytest.mark.parametrize("name", sorted(FILES))
def test_real_headers_match_a_line_by_line_reading(shared_data, name):
    """The bounded reader gives what splitting the file's leading '%' lines gives (an obvious re-reading)."""
    path = shared_data / "events" / name
    data = path.read_bytes()
    expected, offset = {}, 0
    while data[offset:offset + 1] == b"%":
        end = data.index(b"\n", offset) + 1
        text = data[offset + 1:end].decode("latin-1").strip()
        offset = end
        if text == "end":
            break
        key, _, value = text.partition(" ")
        expected.setdefault(key, value.strip())
    info = probe_raw(path)
    assert info.header == expected and info.header_bytes == offset + (2 if info.format == "DAT" else 0)
