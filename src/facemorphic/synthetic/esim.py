"""ESIM-style event simulation from rendered log intensity (Rebecq et al., CoRL 2018).

Why hand-written: the simulator must run inside the generator's render loop on a crop of the sensor,
stream its output in time order, and be bit-for-bit reproducible; no installed package does that
(evlib's simulation wants whole videos and torch; v2e is not installed). The model follows
``shared/reference/events_models.md`` section 3:

* each pixel keeps a reference log intensity R, initialised from the first render (no events then);
* between two renders the log intensity is linear in time; every crossing of R + j*C (upwards, ON)
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
def esim_interval(l_prev, l_new, ref, t_last, cp, cm, t0_us, dt_us, refractory_us, max_per_pixel, x0, y0,
                  out_t, out_x, out_y, out_p, n):
    """Events of one interval between two renders of a crop at (x0, y0); returns the new count ``n``.

    ``ref`` and ``t_last`` (time of each pixel's last emitted event, -inf before any) are updated in
    place; ``cp``/``cm`` are the crop's thresholds. The caller guarantees room in the output arrays
    for every pixel's events (at most 1 + dt/refractory each, or the crossings when no refractory).
    """
    h, w = l_new.shape
    for y in range(h):
        for x in range(w):
            a = l_prev[y, x]
            b = l_new[y, x]
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
            span = b - a
            emitted = 0
            for j in range(1, k + 1):
                if emitted >= max_per_pixel:
                    break
                level = r + sign * j * c
                frac = (level - a) / span if span != 0.0 else 1.0
                if frac < 0.0:
                    frac = 0.0
                elif frac > 1.0:
                    frac = 1.0
                t = t0_us + frac * dt_us
                if t - t_last[y, x] < refractory_us:
                    continue
                t_last[y, x] = t
                out_t[n] = np.int64(np.floor(t))
                out_x[n] = x0 + x
                out_y[n] = y0 + y
                out_p[n] = 1 if sign > 0 else 0
                n += 1
                emitted += 1
            ref[y, x] = r + sign * k * c
    return n


class EventSimulator:
    """Streaming simulator over a fixed crop window of the sensor; feed renders with :meth:`step`."""

    def __init__(self, window, cp_full, cm_full, refractory_us: float, max_interval_us: float):
        self.x0, self.y0, self.w, self.h = (int(v) for v in window)
        self.cp = np.ascontiguousarray(cp_full[self.y0:self.y0 + self.h, self.x0:self.x0 + self.w])
        self.cm = np.ascontiguousarray(cm_full[self.y0:self.y0 + self.h, self.x0:self.x0 + self.w])
        self.refractory_us = float(refractory_us)
        self.ref = None
        self.l_prev = None
        self.t_prev_us = None
        self.t_last = np.full((self.h, self.w), -np.inf)
        self.max_per_pixel = max(min(int(np.ceil(max_interval_us / max(self.refractory_us, 1.0))) + 1, 64), 2)
        self.per_interval = self.w * self.h * self.max_per_pixel
        self._alloc(2 * self.per_interval)
        self.n = 0

    def _alloc(self, capacity: int) -> None:
        self.out_t = np.empty(capacity, np.int64)
        self.out_x = np.empty(capacity, np.uint16)
        self.out_y = np.empty(capacity, np.uint16)
        self.out_p = np.empty(capacity, np.uint8)

    def step(self, log_l: np.ndarray, t_us: float) -> None:
        """Add the render at time ``t_us`` (event clock, µs); the first render only sets the reference."""
        if self.ref is None:
            self.ref = log_l.astype(np.float64, copy=True)
        else:
            if self.n + self.per_interval > len(self.out_t):
                old = (self.out_t, self.out_x, self.out_y, self.out_p)
                self._alloc(2 * len(self.out_t) + self.per_interval)
                for new, prev in zip((self.out_t, self.out_x, self.out_y, self.out_p), old):
                    new[:self.n] = prev[:self.n]
            self.n = esim_interval(self.l_prev, log_l, self.ref, self.t_last, self.cp, self.cm,
                                   self.t_prev_us, t_us - self.t_prev_us, self.refractory_us,
                                   self.max_per_pixel, self.x0, self.y0, self.out_t, self.out_x, self.out_y,
                                   self.out_p, self.n)
        self.l_prev = log_l
        self.t_prev_us = t_us

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
