"""ESIM-style event simulation from rendered log intensity (Rebecq et al., CoRL 2018).

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
"""

from __future__ import annotations

import numba as nb
import numpy as np

from ..events.raw import EVENT_DTYPE

#: Added to the [0, 1] intensity before the log, as ESIM's ``log_eps``-style floor (here a bit larger:
#: rendered textures have dark hair and pupils where a real sensor's dark current dominates).
LOG_EPS = 0.01


def log_intensity(gray: np.ndarray) -> np.ndarray:
    return np.log(gray.astype(np.float64) + LOG_EPS)


def sensor_thresholds(rng: np.random.Generator, width: int, height: int, contrast: float, sigma: float):
    """Fixed-pattern ON and OFF thresholds [height, width] (float64)."""
    cp = np.clip(rng.normal(contrast, sigma, size=(height, width)), 0.01, None)
    cm = np.clip(rng.normal(contrast, sigma, size=(height, width)), 0.01, None)
    return cp, cm


@nb.njit(cache=True, nogil=True)
def esim_interval(l_prev, t_prev, l_new, t_new_us, ref, t_last, cp, cm, refractory_us, x0, y0, start,
                  out_t, out_x, out_y, out_p, n):
    """Events of a region's pixels from each one's previous sample to a new render at ``t_new_us``.

    All 2-D arguments are views of the same region, whose top-left pixel is (x0, y0) on the sensor.
    Pixel (y, x) interpolates linearly from ``l_prev`` at ``t_prev`` (its own last sample: pixels
    outside a moving region are sampled less often) to ``l_new`` at ``t_new_us``. ``ref``,
    ``t_last`` (time of each pixel's last emitted event, -inf before any), ``l_prev`` and ``t_prev``
    are updated in place. Pixels are visited in row-major order from flat index ``start``; a pixel
    is only processed when the output arrays have room for all its crossings, so the call returns
    ``(n, stop)`` with ``stop`` the first unprocessed pixel (``h * w`` when done) and the caller
    grows the arrays and resumes from there.
    """
    h, w = l_new.shape
    capacity = out_t.shape[0]
    y = start // w
    x = start - y * w - 1
    for flat in range(start, h * w):
        x += 1  # row and column without a division per pixel
        if x == w:
            x = 0
            y += 1
        a = l_prev[y, x]
        b = l_new[y, x]
        t0 = t_prev[y, x]
        l_prev[y, x] = b
        t_prev[y, x] = t_new_us
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
            l_prev[y, x] = a
            t_prev[y, x] = t0
            return n, flat
        span = b - a
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
        ref[y, x] = r + sign * k * c
    return n, h * w


class EventSimulator:
    """Streaming simulator over a fixed crop window of the sensor; feed renders with :meth:`step`.

    Each pixel keeps its own last sample (log intensity and time), so a render may cover the whole
    window or only a region of it (where the scene moves fast enough to need more samples): pixels
    left out interpolate linearly over a longer interval, which is ESIM's adaptive sampling per pixel.
    """

    def __init__(self, window, cp_full, cm_full, refractory_us: float):
        self.x0, self.y0, self.w, self.h = (int(v) for v in window)
        self.cp = np.ascontiguousarray(cp_full[self.y0:self.y0 + self.h, self.x0:self.x0 + self.w])
        self.cm = np.ascontiguousarray(cm_full[self.y0:self.y0 + self.h, self.x0:self.x0 + self.w])
        self.refractory_us = float(refractory_us)
        self.ref = None
        self.l_prev = None
        self.t_prev = np.zeros((self.h, self.w))
        self.t_last = np.full((self.h, self.w), -np.inf)
        self._alloc(self.w * self.h)
        self.n = 0

    def _alloc(self, capacity: int) -> None:
        self.out_t = np.empty(capacity, np.int64)
        self.out_x = np.empty(capacity, np.uint16)
        self.out_y = np.empty(capacity, np.uint16)
        self.out_p = np.empty(capacity, np.uint8)

    def step(self, log_l: np.ndarray, t_us: float, region: tuple[int, int, int, int] | None = None) -> None:
        """Sample the pixels of ``region`` (rx, ry, rw, rh inside the window; default the whole window)
        with the log intensity ``log_l`` [rh, rw] at ``t_us`` (event clock, µs). The first call must
        cover the whole window and only sets the references (no events)."""
        rx, ry, rw, rh = region if region is not None else (0, 0, self.w, self.h)
        if self.ref is None:
            if (rw, rh) != (self.w, self.h):
                raise ValueError("the first render must cover the whole simulated window")
            self.ref = np.array(log_l, dtype=np.float64)
            self.l_prev = self.ref.copy()
            self.t_prev[:] = t_us
            return
        area = (slice(ry, ry + rh), slice(rx, rx + rw))
        start = 0
        while True:
            self.n, start = esim_interval(self.l_prev[area], self.t_prev[area], log_l, float(t_us), self.ref[area],
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
    """Sort by time, then row, polarity and column: the order of a sensor's vectorised readout."""
    order = np.lexsort((events["x"], events["p"], events["y"], events["t"]))
    return events[order]
