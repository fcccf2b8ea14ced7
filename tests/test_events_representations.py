"""Representations against slow, obvious pure-Python versions; fused decoding against the two-step path."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from facemorphic.events.alignment import periodic_windows, rgb_frame_windows
from facemorphic.events.frames import FrameBuilder
from facemorphic.events.raw import EVENT_DTYPE, read_events
from facemorphic.errors import FacemorphicError
from facemorphic.events.representations import (PALETTES, REPRESENTATIONS, Histogram, PeriodicFrame, Tbr,
                                                TimeSurface, VoxelGrid, build_representation, render)

SENSOR = (40, 30)


def _events(seed: int, n: int, t0: int = 1000, span: int = 3000) -> np.ndarray:
    """Nearly sorted events with a few going back in time (like stray TIME_LOW words)."""
    rng = np.random.default_rng(seed)
    ev = np.zeros(n, EVENT_DTYPE)
    ev["t"] = np.sort(rng.integers(t0 - 200, t0 + span + 200, n))
    back = rng.random(n) < 0.05
    ev["t"][back] -= rng.integers(0, 300, back.sum())
    ev["x"] = rng.integers(0, SENSOR[0], n)
    ev["y"] = rng.integers(0, SENSOR[1], n)
    ev["p"] = rng.integers(0, 2, n)
    return ev


def _out_pixel(e, size):
    return int(e["x"]) * size[0] // SENSOR[0], int(e["y"]) * size[1] // SENSOR[1]


def slow_periodic(ev, t0, t1, size, palette):
    colors = PALETTES[palette]
    img = [[colors[0] for _ in range(size[0])] for _ in range(size[1])]
    for e in ev:
        if t0 <= e["t"] < t1:
            x, y = _out_pixel(e, size)
            img[y][x] = colors[2] if e["p"] == 1 else colors[1]
    return np.array(img, dtype=np.uint8).transpose(2, 0, 1)


def slow_histogram(ev, t0, t1, size):
    out = np.zeros((2, size[1], size[0]), np.int64)
    for e in ev:
        if t0 <= e["t"] < t1:
            x, y = _out_pixel(e, size)
            out[e["p"], y, x] += 1
    return np.minimum(out, 255).astype(np.uint8)


def slow_time_surface(ev, t0, t1, size, tau):
    newest = {}
    for e in ev:
        if t0 <= e["t"] < t1:
            key = (int(e["p"]),) + _out_pixel(e, size)[::-1]
            newest[key] = max(newest.get(key, -1), int(e["t"]))
    out = np.zeros((2, size[1], size[0]), np.uint8)
    for (c, y, x), t in newest.items():
        out[c, y, x] = round(255 * math.exp(-(t1 - t) / tau))
    return out


def slow_voxel(ev, t0, t1, size, bins, scale):
    grid = np.zeros((bins, size[1], size[0]))
    for e in ev:
        if t0 <= e["t"] < t1:
            x, y = _out_pixel(e, size)
            tstar = (bins - 1) * (int(e["t"]) - t0) / (t1 - t0)
            for b in range(bins):
                grid[b, y, x] += (1 if e["p"] == 1 else -1) * max(0.0, 1 - abs(b - tstar))
    return np.clip(np.rint(128 + scale * grid), 0, 255).astype(np.uint8)


def slow_tbr(ev, t0, t1, size, n_bins):
    out = np.zeros((1, size[1], size[0]), np.uint8)
    for e in ev:
        if t0 <= e["t"] < t1:
            x, y = _out_pixel(e, size)
            b = n_bins * (int(e["t"]) - t0) // (t1 - t0)
            out[0, y, x] |= 1 << b
    return out


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10**6), n=st.integers(0, 600), size=st.sampled_from([SENSOR, (17, 11), (40, 15)]),
       window=st.sampled_from([(1000, 4000), (1500, 1501), (2200, 2900)]))
def test_representations_equal_slow_versions(seed, n, size, window):
    ev = _events(seed, n)
    t0, t1 = window
    for palette in ("dark", "light", "coolwarm", "gray"):
        got = render(PeriodicFrame(palette), ev, t0, t1, SENSOR, size)
        np.testing.assert_array_equal(got, slow_periodic(ev, t0, t1, size, palette))
    np.testing.assert_array_equal(render("histogram", ev, t0, t1, SENSOR, size), slow_histogram(ev, t0, t1, size))
    rep = TimeSurface(tau_us=700.0)
    np.testing.assert_array_equal(render(rep, ev, t0, t1, SENSOR, size), slow_time_surface(ev, t0, t1, size, 700.0))
    rep = VoxelGrid(bins=4)
    np.testing.assert_array_equal(render(rep, ev, t0, t1, SENSOR, size), slow_voxel(ev, t0, t1, size, 4, 16.0))
    for n_bins in (1, 5, 8):
        rep = Tbr(bins=n_bins)
        np.testing.assert_array_equal(render(rep, ev, t0, t1, SENSOR, size), slow_tbr(ev, t0, t1, size, n_bins))


def test_periodic_frame_palette_values_and_last_event_wins():
    ev = np.array([(10, 1, 1, 1), (11, 1, 1, 0), (12, 2, 1, 1), (13, 3, 0, 0)], EVENT_DTYPE)
    frame = render("periodic_frame", ev, 0, 100, (4, 2))
    assert frame.shape == (3, 2, 4)
    assert tuple(frame[:, 0, 0]) == (30, 37, 52)  # Dark background, RGB order
    assert tuple(frame[:, 1, 1]) == (64, 126, 200)  # OFF came last at (1, 1)
    assert tuple(frame[:, 1, 2]) == (255, 255, 255)  # ON
    gray = render(PeriodicFrame("gray"), ev, 0, 100, (4, 2))
    assert gray.shape == (1, 2, 4) and gray[0, 1, 1] == 0 and gray[0, 1, 2] == 255 and gray[0, 0, 0] == 128


def test_downscaling_sums_counts():
    ev = np.zeros(4, EVENT_DTYPE)
    ev["t"], ev["x"], ev["y"], ev["p"] = [1, 2, 3, 4], [0, 1, 0, 39], [0, 0, 1, 29], [1, 1, 1, 0]
    hist = render("histogram", ev, 0, 10, SENSOR, (20, 15))
    assert hist[1, 0, 0] == 3 and hist[0, 14, 19] == 1 and hist.sum() == 4


@pytest.mark.parametrize("name", ["evt3_gen41_1280x720_expelliarmus_sample.raw",
                                  "evt3_1280x720_triggers_event_camera_codecs.raw",
                                  "evt2_gen3_640x480_expelliarmus_sample.raw"])
def test_streamed_frames_equal_render_on_real_files(shared_data, name):
    """Fused (EVT3 periodic) and two-step streaming equal :func:`render` per window, with jittered windows."""
    path = shared_data / "events" / name
    events, _ = read_events(path)
    sensor = (1280, 720) if name.startswith("evt3") else (640, 480)
    rng = np.random.default_rng(5)
    span = (events["t"][-1] - events["t"][0]) / 1e6
    period = max(span / 12, 0.0005)
    times = np.arange(12) * period + rng.uniform(-0.2, 0.2, 12) * period
    times = np.sort(times - times[0])
    cases = [(rgb_frame_windows(times, int(events["t"][0]) - 100, 1, 0), None),
             (rgb_frame_windows(times, int(events["t"][0]) + 50, 3, int(period * 1e6) // 5), (320, 180))]
    for windows, size in cases:
        for rep in (PeriodicFrame(), Histogram(), Tbr(bins=4)):
            expected = np.stack([render(rep, events, int(windows.visible[j]), int(windows.ends[j]), sensor, size)
                                 for j in range(len(windows))])
            for fused in (True, False):
                builder = FrameBuilder(path, windows, rep, size=size, chunk_words=3001, fused=fused)
                frames = list(builder)
                assert [j for j, _ in frames] == list(range(len(windows)))
                np.testing.assert_array_equal(np.stack([f for _, f in frames]), expected)
                in_windows = sum(((events["t"] >= a) & (events["t"] < b)).sum()
                                 for a, b in zip(windows.visible, windows.ends))
                assert builder.stats.n_events_in_frames == in_windows


def test_periodic_windows_tile_like_metavision():
    w = periodic_windows(1_234_567, 1_400_000, 33_333)
    assert w.starts[0] == 33_333 * (1_234_567 // 33_333) and np.all(w.starts[1:] == w.ends[:-1])
    assert w.starts[-1] <= 1_400_000 < w.ends[-1]


def test_registry_builds_each_representation_from_a_whole_config_block():
    """Each class takes only the parameters it declares from a block holding every representation's."""
    block = {"palette": "light", "bins": 7, "tau_us": 250.0, "width": 320, "subwindows": 2}
    assert {name: cls.parameters for name, cls in REPRESENTATIONS.items()} == {
        "periodic_frame": ("palette",), "histogram": (), "time_surface": ("tau_us",), "voxel_grid": ("bins",),
        "tbr": ("bins",)}
    built = {name: build_representation(name, **block) for name in REPRESENTATIONS}
    assert built["periodic_frame"] == PeriodicFrame("light") and built["histogram"] == Histogram()
    assert built["time_surface"] == TimeSurface(250.0) and built["voxel_grid"] == VoxelGrid(7)
    assert built["tbr"] == Tbr(7)
    assert [built[name].channels for name in REPRESENTATIONS] == [3, 2, 2, 7, 1]
    assert build_representation("voxel_grid", palette="gray") == VoxelGrid()  # defaults where the block is silent
    attrs = built["voxel_grid"].attrs()
    assert attrs == {"representation": "voxel_grid", "bins": 7, "value_offset": 128, "value_scale": 16.0}
    for name, values, key in [("tbr", {"bins": 9}, "bins"), ("voxel_grid", {"bins": 1}, "bins"),
                              ("periodic_frame", {"palette": "neon"}, "palette"),
                              ("time_surface", {"tau_us": 0.0}, "tau_us"), ("optical_flow", {}, "representation")]:
        with pytest.raises(FacemorphicError, match=f"option '{key}'"):
            build_representation(name, **values)
