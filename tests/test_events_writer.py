"""EVT 3.0 writer: round trips through the project's reader, evt3 and evlib."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from facemorphic.errors import InputFileError
from facemorphic.events.evt3_writer import Evt3Writer, write_evt3
from facemorphic.events.raw import EVENT_DTYPE, TRIGGER_DTYPE, probe_raw, read_events


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
    if n == 0:  # header only: the probe rejects it as holding no event data
        with pytest.raises(InputFileError, match="no event data"):
            probe_raw(path)
        return
    info = probe_raw(path)
    assert (info.format, info.width, info.height) == ("EVT3", *size)
    assert info.first_event_us == int(events["t"][0])


def test_vectors_make_edges_compact(tmp_path):
    # a full row of ON events at one time: VECT_BASE_X + VECT_12 words, about 1/12 word per event
    ev = np.zeros(1200, EVENT_DTYPE)
    ev["t"], ev["x"], ev["y"], ev["p"] = 5000, np.arange(1200), 7, 1
    path = tmp_path / "row.raw"
    write_evt3(path, ev, 1280, 720)
    words = np.frombuffer(path.read_bytes()[probe_raw(path).header_bytes:], "<u2")
    assert len(words) < 1200 / 10
    assert np.sum((words >> 12) == 0x4) == 100  # VECT_12
    np.testing.assert_array_equal(read_events(path)[0], ev)


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
