"""ESIM-style event simulation from rendered intensity (Rebecq et al., CoRL 2018).

Why hand-written: the simulator must run inside the generator's render loop on a crop of the sensor,
stream its output in time order, and be bit-for-bit reproducible; no installed package does that
(evlib's simulation wants whole videos and torch; v2e is not installed). The model follows
``shared/reference/events_models.md`` section 3:

* each pixel keeps a reference log intensity R, initialised from the first render (no events then);
* between two samples of a pixel the log intensity is linear in time (a pixel is sampled by every
  render that covers it: the generator renders fast-moving regions more often); every crossing of R + j*C (upwards, ON)
  or R - j*C (downwards, OFF) is an event, its time interpolated linearly between the renders, so
  a fast change gives several equally spaced events in one interval;
* contrast thresholds are fixed-pattern per pixel, C+ and C- ~ N(C, sigma) clipped at 0.01 (v2e);
* a refractory period drops events closer than ``refractory_us`` to the pixel's previous event while
  the reference still advances (ESIM semantics);
* background shot noise: uniformly placed ON/OFF events at a given rate per pixel, anywhere on the
  sensor (they do not move the reference, a simplification that keeps the crop and the rest of the
  sensor independent).

The kernel takes the rendered linear intensity and keeps, per pixel, the intensities at which its next
ON and OFF crossings start: most samples of most pixels cross nothing, and for those it compares two
numbers instead of taking a log (the logs, where taken, are the same numbers, so are the events).
"""

from __future__ import annotations

import numba as nb
import numpy as np

from ..events.raw import EVENT_DTYPE

#: Added to the [0, 1] intensity before the log, as ESIM's ``log_eps``-style floor (here a bit larger:
#: rendered textures have dark hair and pupils where a real sensor's dark current dominates).
LOG_EPS = 0.01
#: Relative margin by which the intensity levels of each pixel's next crossings are narrowed: above the
#: rounding of exp, log and of the levels' float32 storage, so a pixel the levels call quiet never has a
#: crossing by the log test.
LEVEL_MARGIN = 1e-6


def sensor_thresholds(rng: np.random.Generator, width: int, height: int, contrast: float, sigma: float):
    """Fixed-pattern ON and OFF thresholds [height, width] (float64)."""
    cp = np.clip(rng.normal(contrast, sigma, size=(height, width)), 0.01, None)
    cm = np.clip(rng.normal(contrast, sigma, size=(height, width)), 0.01, None)
    return cp, cm


@nb.njit(cache=True, nogil=True)
def _crossing_levels(ref, cp, cm):
    """Intensities (+ LOG_EPS) below which an OFF and above which an ON crossing may start,
    exp(ref - cm) and exp(ref + cp), narrowed by LEVEL_MARGIN."""
    return np.float32(np.exp(ref - cm) * (1.0 + LEVEL_MARGIN)), np.float32(np.exp(ref + cp) * (1.0 - LEVEL_MARGIN))


@nb.njit(cache=True, nogil=True)
def esim_start(gray, ref, g_prev, off_level, on_level, cp, cm):
    """First sample of every pixel: the reference is its log intensity; no events."""
    h, w = gray.shape
    for y in range(h):
        for x in range(w):
            r = np.log(gray[y, x] + LOG_EPS)
            ref[y, x] = r
            g_prev[y, x] = gray[y, x]
            off_level[y, x], on_level[y, x] = _crossing_levels(r, cp[y, x], cm[y, x])


@nb.njit(cache=True, nogil=True)
def esim_interval(gray, sample, sample_times, g_prev, last_sample, off_level, on_level, ref, t_last, cp, cm,
                  refractory_us, x0, y0, start, out_t, out_x, out_y, out_p, n):
    """Events of a region's pixels from each one's previous sample to render number ``sample``.

    All 2-D arguments are views of the same region, whose top-left pixel is (x0, y0) on the sensor.
    Render k is at ``sample_times[k]`` (event clock, µs). Pixel (y, x) interpolates its log intensity
    linearly from its own last sample (intensity ``g_prev`` at render ``last_sample``: pixels outside
    a moving region are sampled less often) to that of ``gray``. Most samples cross no threshold: a
    pixel whose intensity stays between ``off_level`` and ``on_level`` (the intensities of its next
    crossings) only records its sample, so logs are taken only near a crossing, with the values that
    taking them everywhere would give, and a quiet pixel costs a few bytes of memory traffic.
    ``g_prev``, ``last_sample``, the levels, ``ref`` and ``t_last`` (time of each pixel's last emitted
    event, -inf before any) are updated in place. Pixels are visited in row-major order from flat
    index ``start``; a pixel is only processed when the output arrays have room for all its
    crossings, so the call returns ``(n, stop)`` with ``stop`` the first unprocessed pixel (``h * w``
    when done) and the caller grows the arrays and resumes from there.
    """
    h, w = gray.shape
    capacity = out_t.shape[0]
    t_new_us = sample_times[sample]
    for y in range(start // w, h):
        for x in range(w):  # whole rows with a skip: a loop from 0 to w compiles to faster code
            flat = y * w + x
            if flat < start:
                continue
            g = gray[y, x]
            q = g + LOG_EPS
            g0 = g_prev[y, x]
            s0 = last_sample[y, x]
            g_prev[y, x] = g
            last_sample[y, x] = sample
            if off_level[y, x] < q < on_level[y, x]:
                continue
            a = np.log(g0 + LOG_EPS)
            b = np.log(q)
            r = ref[y, x]
            d = b - r
            if d >= 0.0:
                c = cp[y, x]
                sign = 1.0
            else:
                c = cm[y, x]
                sign = -1.0
            k = int(np.floor(abs(d) / c))
            if k == 0:
                continue
            if n + k > capacity:
                g_prev[y, x] = g0
                last_sample[y, x] = s0
                return n, flat
            span = b - a
            t0 = sample_times[s0]
            dt = t_new_us - t0
            for j in range(1, k + 1):
                level = r + sign * j * c
                frac = (level - a) / span if span != 0.0 else 1.0
                if frac < 0.0:
                    frac = 0.0
                elif frac > 1.0:
                    frac = 1.0
                t = t0 + frac * dt
                if t - t_last[y, x] < refractory_us:
                    continue
                t_last[y, x] = t
                out_t[n] = np.int64(np.floor(t))
                out_x[n] = x0 + x
                out_y[n] = y0 + y
                out_p[n] = 1 if sign > 0 else 0
                n += 1
            r += sign * k * c
            ref[y, x] = r
            off_level[y, x], on_level[y, x] = _crossing_levels(r, cp[y, x], cm[y, x])
    return n, h * w


class EventSimulator:
    """Streaming simulator over a fixed crop window of the sensor; feed renders with :meth:`step`.

    Each pixel keeps its own last sample (intensity and render), so a render may cover the whole
    window or only a region of it (where the scene moves fast enough to need more samples): pixels
    left out interpolate linearly over a longer interval, which is ESIM's adaptive sampling per pixel.
    """

    def __init__(self, window, cp_full, cm_full, refractory_us: float):
        self.x0, self.y0, self.w, self.h = (int(v) for v in window)
        self.cp = np.ascontiguousarray(cp_full[self.y0:self.y0 + self.h, self.x0:self.x0 + self.w])
        self.cm = np.ascontiguousarray(cm_full[self.y0:self.y0 + self.h, self.x0:self.x0 + self.w])
        self.refractory_us = float(refractory_us)
        self.ref = None
        shape = (self.h, self.w)
        self.g_prev = np.empty(shape, np.float32)
        self.last_sample = np.zeros(shape, np.int32)
        self.sample_times = np.empty(1024)
        self.n_samples = 0
        self.off_level, self.on_level = np.empty(shape, np.float32), np.empty(shape, np.float32)
        self.t_last = np.full(shape, -np.inf)
        self._alloc(self.w * self.h)
        self.n = 0

    def _alloc(self, capacity: int) -> None:
        self.out_t = np.empty(capacity, np.int64)
        self.out_x = np.empty(capacity, np.uint16)
        self.out_y = np.empty(capacity, np.uint16)
        self.out_p = np.empty(capacity, np.uint8)

    def step(self, gray: np.ndarray, t_us: float, region: tuple[int, int, int, int] | None = None) -> None:
        """Sample the pixels of ``region`` (rx, ry, rw, rh inside the window; default the whole window)
        with the rendered intensity ``gray`` [rh, rw] (float32, in [0, 1]) at ``t_us`` (event clock,
        µs). The first call must cover the whole window and only sets the references (no events)."""
        rx, ry, rw, rh = region if region is not None else (0, 0, self.w, self.h)
        if self.n_samples == len(self.sample_times):
            self.sample_times = np.concatenate([self.sample_times, np.empty_like(self.sample_times)])
        sample = self.n_samples
        self.sample_times[sample] = t_us
        self.n_samples += 1
        if self.ref is None:
            if (rw, rh) != (self.w, self.h):
                raise ValueError("the first render must cover the whole simulated window")
            self.ref = np.empty((self.h, self.w))
            esim_start(gray, self.ref, self.g_prev, self.off_level, self.on_level, self.cp, self.cm)
            return
        area = (slice(ry, ry + rh), slice(rx, rx + rw))
        start = 0
        while True:
            self.n, start = esim_interval(gray, sample, self.sample_times, self.g_prev[area], self.last_sample[area],
                                          self.off_level[area], self.on_level[area], self.ref[area],
                                          self.t_last[area], self.cp[area], self.cm[area], self.refractory_us,
                                          self.x0 + rx, self.y0 + ry, start, self.out_t, self.out_x, self.out_y,
                                          self.out_p, self.n)
            if start == rw * rh:
                return
            old = (self.out_t, self.out_x, self.out_y, self.out_p)
            self._alloc(2 * len(self.out_t))
            for new, prev in zip((self.out_t, self.out_x, self.out_y, self.out_p), old):
                new[:self.n] = prev[:self.n]

    def take(self) -> np.ndarray:
        """The events since the last call, unsorted, as EVENT_DTYPE."""
        ev = np.empty(self.n, EVENT_DTYPE)
        ev["t"], ev["x"], ev["y"], ev["p"] = (self.out_t[:self.n], self.out_x[:self.n], self.out_y[:self.n],
                                              self.out_p[:self.n])
        self.n = 0
        return ev


def shot_noise(rng: np.random.Generator, t_start_us: int, t_end_us: int, width: int, height: int,
               rate_hz: float) -> np.ndarray:
    """Background events at ``rate_hz`` per pixel in [t_start_us, t_end_us), uniform in space and time."""
    span = max(int(t_end_us) - int(t_start_us), 0)
    count = int(rng.poisson(rate_hz * width * height * span * 1e-6)) if span else 0
    ev = np.empty(count, EVENT_DTYPE)
    ev["t"] = rng.integers(t_start_us, t_end_us, size=count) if count else 0
    ev["x"] = rng.integers(0, width, size=count)
    ev["y"] = rng.integers(0, height, size=count)
    ev["p"] = rng.integers(0, 2, size=count)
    return ev


def sort_events(events: np.ndarray) -> np.ndarray:
    """Sort by time, then row, polarity and column: the order of a sensor's vectorised readout.

    One sort of a packed integer key (time | row | polarity | column), several times faster than a
    four-key lexsort; events with equal keys are equal, so the order is fully determined.
    """
    if len(events) == 0:
        return events
    x_bits, y_bits = int(events["x"].max()).bit_length(), int(events["y"].max()).bit_length()
    t_shift = y_bits + 1 + x_bits
    t = events["t"]
    if t.min() < 0 or int(t.max()) >= 1 << (63 - t_shift):
        raise ValueError(f"event times {t.min()}..{t.max()} µs do not fit a {63 - t_shift}-bit sort key")
    key = ((t << t_shift) | (events["y"].astype(np.int64) << (1 + x_bits))
           | (events["p"].astype(np.int64) << x_bits) | events["x"])
    key.sort()
    out = np.empty(len(key), EVENT_DTYPE)
    out["t"] = key >> t_shift
    out["y"] = (key >> (1 + x_bits)) & ((1 << y_bits) - 1)
    out["p"] = (key >> x_bits) & 1
    out["x"] = key & ((1 << x_bits) - 1)
    return out
