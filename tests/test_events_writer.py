"""EVT 3.0 writer: round trips through the project's reader, evt3, evlib and a decoder with the HAL's rules.

Every file written here is also checked against the vector grammar of a Prophesee sensor
(:mod:`evt3_grammar`), which the real Gen4.1 recordings are shown to follow.
"""

from __future__ import annotations

import numpy as np
import pytest
from evt3_grammar import decode_hal_rules, raw_words, vector_grammar_violations
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from facemorphic.errors import InputFileError
from facemorphic.events.evt3_writer import WRITER_VERSION, Evt3Writer, read_writer_version, write_evt3
from facemorphic.events.raw import EVENT_DTYPE, TRIGGER_DTYPE, probe_raw, read_events

EVT3_RECORDINGS = ["evt3_gen41_1280x720_expelliarmus_sample.raw", "evt3_gen41_1280x720_pedestrians_5000ev.raw",
                   "evt3_1280x720_triggers_event_camera_codecs.raw"]


def assert_hal_reads_exactly(path, events, triggers, width, height) -> np.ndarray:
    """The file obeys the sensor's vector grammar and the HAL's rules decode exactly ``events``/``triggers``.

    Returns the file's words for further checks.
    """
    words = raw_words(path)
    assert vector_grammar_violations(words, width) == []
    decoded, decoded_triggers = decode_hal_rules(words, width, height)
    np.testing.assert_array_equal(decoded, events)
    np.testing.assert_array_equal(decoded_triggers, triggers)
    return words


def _stream(draw_seed: int, n: int, t0: int, span: int, width: int, height: int, runs: bool) -> np.ndarray:
    """Random sorted events; with ``runs``, many share (t, y, p) with nearby increasing x (vector words)."""
    rng = np.random.default_rng(draw_seed)
    ev = np.zeros(n, EVENT_DTYPE)
    ev["t"] = np.sort(t0 + rng.integers(0, max(span, 1), n))
    ev["x"] = rng.integers(0, width, n)
    ev["y"] = rng.integers(0, height, n)
    ev["p"] = rng.integers(0, 2, n)
    if runs and n > 4:
        # turn blocks into edge-like runs: same t, y, p and x increasing by 1..13 (some beyond a vector)
        for start in range(0, n - 4, 7):
            block = slice(start, min(start + 6, n))
            m = len(ev[block])
            ev["t"][block] = ev["t"][start]
            ev["y"][block] = ev["y"][start]
            ev["p"][block] = ev["p"][start]
            xs = ev["x"][start] + np.cumsum(rng.integers(1, 14, m)) - 1
            ev["x"][block] = np.minimum(xs, width - 1)
        ev = ev[np.argsort(ev["t"], kind="stable")]
    return ev


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(0, 400), t0=st.integers(0, 40_000_000),
       span=st.sampled_from([1, 50, 5000, 20_000_000]), runs=st.booleans(),
       size=st.sampled_from([(1280, 720), (640, 480), (2048, 2048), (16, 8)]))
def test_round_trip_own_reader(tmp_path, seed, n, t0, span, runs, size):
    events = _stream(seed, n, t0, span, *size, runs)
    path = tmp_path / f"rt_{seed}_{n}.raw"
    write_evt3(path, events, *size)
    decoded, triggers = read_events(path, chunk_words=257)
    np.testing.assert_array_equal(decoded, events)
    assert len(triggers) == 0
    assert_hal_reads_exactly(path, events, triggers, *size)
    if n == 0:  # header only: the probe rejects it as holding no event data
        with pytest.raises(InputFileError, match="no event data"):
            probe_raw(path)
        return
    info = probe_raw(path)
    assert (info.format, info.width, info.height) == ("EVT3", *size)
    assert info.first_event_us == int(events["t"][0])


def test_dense_row_is_chained_whole_vector_groups(tmp_path):
    # a full row of ON events at one time: one VECT_BASE_X, then 12,12,8 groups chained over 32-px blocks
    ev = np.zeros(1200, EVENT_DTYPE)
    ev["t"], ev["x"], ev["y"], ev["p"] = 5000, np.arange(1200), 7, 1
    path = tmp_path / "row.raw"
    write_evt3(path, ev, 1280, 720)
    words = assert_hal_reads_exactly(path, ev, np.empty(0, TRIGGER_DTYPE), 1280, 720)
    full_block = [0x4FFF, 0x4FFF, 0x50FF]
    last_block = [0x4FFF, 0x400F, 0x5000]  # x 1184..1199: 16 events
    expected = [0x8001, 0x6000 | (5000 & 0xFFF), 7, 0x3800] + full_block * 37 + last_block
    assert words.tolist() == expected
    np.testing.assert_array_equal(read_events(path)[0], ev)


def test_vector_groups_only_where_they_save_words_and_fit_the_sensor(tmp_path):
    # row 3, t 100, OFF: x 30..33 crosses a block edge (2 + 2 events: ADDR_X), 64..68 is 5 events in one
    # block (a group), 96..99 are 4 events chained after it (a chained group); then ON 120..123, 4 events
    # whose block is not chained to anything (ADDR_X); the sensor is 140 wide, so row 4's 128..139
    # (12 events) may not be a group (128 + 32 > 140): ADDR_X
    xs3 = [30, 31, 32, 33, 64, 65, 66, 67, 68, 96, 97, 98, 99]
    xs4 = list(range(128, 140))
    ev = np.zeros(len(xs3) + 4 + len(xs4), EVENT_DTYPE)
    ev["t"] = 100
    ev["x"] = xs3 + [120, 121, 122, 123] + xs4
    ev["y"] = [3] * (len(xs3) + 4) + [4] * len(xs4)
    ev["p"] = [0] * len(xs3) + [1] * 4 + [0] * len(xs4)
    path = tmp_path / "edges.raw"
    write_evt3(path, ev, 140, 8)
    words = assert_hal_reads_exactly(path, ev, np.empty(0, TRIGGER_DTYPE), 140, 8)
    expected = ([0x8000, 0x6000 | 100, 3, 0x2000 | 30, 0x2000 | 31, 0x2000 | 32, 0x2000 | 33,
                 0x3000 | 64, 0x4000 | 0b11111, 0x4000, 0x5000,  # 64..68
                 0x4000 | 0b1111, 0x4000, 0x5000]  # chained: 96..99
                + [0x2800 | x for x in (120, 121, 122, 123)] + [4] + [0x2000 | x for x in xs4])
    assert words.tolist() == expected
    np.testing.assert_array_equal(read_events(path)[0], ev)


def test_events_not_in_increasing_x_keep_their_input_order(tmp_path):
    # one row at one time: x descending, then both polarities interleaved, then a dense block after a
    # lone smaller x; only the runs increasing in x within one polarity may become vector groups
    descending = np.arange(40, 0, -1)
    interleaved = np.arange(200, 240)
    ev = np.zeros(40 + 40 + 1 + 32, EVENT_DTYPE)
    ev["t"], ev["y"] = 7000, 11
    ev["x"] = np.concatenate([descending, interleaved, [500], np.arange(256, 288)])
    ev["p"] = np.concatenate([np.ones(40), np.arange(40) % 2, [0], np.ones(32)])
    path = tmp_path / "order.raw"
    write_evt3(path, ev, 640, 480)
    words = assert_hal_reads_exactly(path, ev, np.empty(0, TRIGGER_DTYPE), 640, 480)
    np.testing.assert_array_equal(read_events(path)[0], ev)
    bases = words[(words >> 12) == 0x3] & 0x7FF
    assert bases.tolist() == [256]  # the only run of same polarity and increasing x with >= 5 in a block


def test_edge_columns_of_a_2048_wide_sensor(tmp_path):
    # dense runs in the first and in the last block (2016 + 32 == 2048: the group still fits), both polarities
    ev = np.zeros(4 * 32, EVENT_DTYPE)
    ev["t"] = np.repeat([10, 10, 4_000_000, 4_000_000], 32)
    ev["y"] = np.repeat([0, 2047, 1, 2046], 32)
    ev["p"] = np.repeat([1, 0, 0, 1], 32)
    ev["x"] = np.concatenate([np.arange(32), np.arange(2016, 2048), np.arange(0, 64, 2), np.arange(2016, 2048)])
    path = tmp_path / "big.raw"
    write_evt3(path, ev, 2048, 2048)
    words = assert_hal_reads_exactly(path, ev, np.empty(0, TRIGGER_DTYPE), 2048, 2048)
    np.testing.assert_array_equal(read_events(path)[0], ev)
    assert ((words[(words >> 12) == 0x3] & 0x7FF).tolist()) == [0, 2016, 0, 2016]


def test_streaming_writer_triggers_and_time_loops(tmp_path):
    events = _stream(7, 5000, 16_700_000, 40_000_000, 1280, 720, True)  # spans two 2^24 us wraps
    triggers = np.zeros(4, TRIGGER_DTYPE)
    triggers["t"] = [16_700_000, 20_000_000, 33_554_431, 50_000_000]
    triggers["id"], triggers["p"] = [0, 1, 0, 3], [1, 0, 1, 0]
    path = tmp_path / "stream.raw"
    parts = np.array_split(np.arange(len(events)), 5)
    bounds = [events["t"][part[0]] for part in parts] + [np.iinfo(np.int64).max]
    with Evt3Writer(path, 1280, 720) as writer:
        for k, part in enumerate(parts):
            writer.write(events[part], triggers[(triggers["t"] >= bounds[k]) & (triggers["t"] < bounds[k + 1])])
    decoded, decoded_triggers = read_events(path)
    np.testing.assert_array_equal(decoded, events)
    np.testing.assert_array_equal(decoded_triggers, triggers[triggers["t"] >= events["t"][0]])
    assert len(decoded_triggers) >= 3
    assert_hal_reads_exactly(path, events, decoded_triggers, 1280, 720)


def test_writer_rejects_bad_input(tmp_path):
    ev = np.zeros(2, EVENT_DTYPE)
    ev["t"] = [10, 5]
    with pytest.raises(ValueError, match="sorted"):
        write_evt3(tmp_path / "a.raw", ev, 64, 64)
    ev["t"], ev["x"] = [5, 10], [3, 64]
    with pytest.raises(ValueError, match="outside"):
        write_evt3(tmp_path / "b.raw", ev, 64, 64)
    assert not (tmp_path / "a.raw").exists() and not (tmp_path / "b.raw").exists()


@pytest.mark.parametrize("seed", [1, 2])
def test_evt3_and_evlib_decode_writer_output_exactly(tmp_path, seed):
    evt3 = pytest.importorskip("evt3")
    evlib = pytest.importorskip("evlib")
    events = _stream(seed, 20_000, 3_000_000, 30_000_000, 1280, 720, True)
    triggers = np.array([(3_500_000, 0, 1), (9_000_000, 0, 0)], TRIGGER_DTYPE)
    path = tmp_path / "x.raw"
    write_evt3(path, events, 1280, 720, triggers=triggers)
    assert np.sum((raw_words(path) >> 12) == 0x3) > 100  # the runs made vector groups
    assert_hal_reads_exactly(path, events, triggers, 1280, 720)

    decoded, trig = evt3.decode_file_with_triggers(str(path))
    np.testing.assert_array_equal(np.asarray(decoded.t, np.int64), events["t"])
    np.testing.assert_array_equal(np.asarray(decoded.x), events["x"])
    np.testing.assert_array_equal(np.asarray(decoded.y), events["y"])
    np.testing.assert_array_equal(np.asarray(decoded.p), events["p"])
    assert list(np.asarray(trig.timestamp, np.int64)) == [3_500_000, 9_000_000]
    assert list(np.asarray(trig.value, np.int64)) == [1, 0]

    import polars

    frame = evlib.load_events(str(path), sort=False).collect()
    np.testing.assert_array_equal(frame["t"].cast(polars.Int64).to_numpy(), events["t"])
    np.testing.assert_array_equal(frame["x"].to_numpy().astype(np.int64), events["x"])
    np.testing.assert_array_equal(frame["y"].to_numpy().astype(np.int64), events["y"])
    np.testing.assert_array_equal(frame["polarity"].to_numpy() > 0, events["p"] == 1)


def test_real_sensor_recordings_obey_the_grammar_and_the_hal_rules_match_their_reference(shared_data):
    # the claim the writer rests on: a Gen4.1 sensor writes only aligned, complete 32-px groups; and the
    # test decoder reproduces OpenEB's own decode of each recording (its reference .npy) exactly
    for name in EVT3_RECORDINGS:
        path = shared_data / "events" / name
        words = raw_words(path)
        assert vector_grammar_violations(words, 1280) == [], name
        decoded, triggers = decode_hal_rules(words, 1280, 720)
        np.testing.assert_array_equal(decoded, np.load(f"{path}.reference.npy").astype(EVENT_DTYPE), err_msg=name)
        reference_triggers = path.with_name(name + ".reference_triggers.npy")
        expected_triggers = np.load(reference_triggers) if reference_triggers.exists() else np.empty(0, TRIGGER_DTYPE)
        np.testing.assert_array_equal(triggers, expected_triggers.astype(TRIGGER_DTYPE), err_msg=name)
    gen41 = raw_words(shared_data / "events" / EVT3_RECORDINGS[0])
    assert np.sum((gen41 >> 12) == 0x3) == 10_527  # the vector groups checked above


@pytest.mark.parametrize("name", EVT3_RECORDINGS)
def test_real_recordings_re_encoded_decode_exactly(tmp_path, shared_data, name):
    events, triggers = read_events(shared_data / "events" / name)
    path = tmp_path / name
    write_evt3(path, events, 1280, 720, triggers=triggers)
    decoded, decoded_triggers = read_events(path)
    np.testing.assert_array_equal(decoded, events)
    np.testing.assert_array_equal(decoded_triggers, triggers)
    words = assert_hal_reads_exactly(path, events, triggers, 1280, 720)
    if name == EVT3_RECORDINGS[0]:  # the vectorised Gen4.1 recording (mostly 2-event blocks): a few groups
        assert np.sum((words >> 12) == 0x3) > 0


def test_writer_version_is_read_from_the_header(tmp_path, shared_data):
    ev = np.array([(100, 1, 2, 1), (200, 3, 4, 0)], EVENT_DTYPE)
    path = tmp_path / "new.raw"
    write_evt3(path, ev, 64, 64)
    assert WRITER_VERSION == 2 and read_writer_version(path) == WRITER_VERSION
    body = path.read_bytes()[probe_raw(path).header_bytes:]
    first_writer = tmp_path / "v1.raw"  # the first writer's header: no version line
    first_writer.write_bytes(b"% evt 3.0\n% format EVT3;height=64;width=64\n% geometry 64x64\n"
                             b"% integrator_name facemorphic\n% end\n" + body)
    assert read_writer_version(first_writer) is None
    assert read_writer_version(shared_data / "events" / EVT3_RECORDINGS[0]) is None
    broken = tmp_path / "broken.raw"
    broken.write_bytes(b"% evt 3.0\n% geometry 64x64\n% facemorphic_evt3_writer two\n% end\n" + body)
    with pytest.raises(InputFileError, match="facemorphic_evt3_writer two"):
        read_writer_version(broken)
