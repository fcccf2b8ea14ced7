"""Event representations behind one interface: each a pure function of events and a window ``[t0, t1)``.

Every representation is built in two steps that the streaming frame builder (:mod:`.frames`) reuses
unchanged: a numba *accumulate* kernel that folds events into a per-window buffer, and a *finalize* step
that turns the buffer into ``uint8 [C, H, W]``. :func:`render` runs both on one window; tests compare it
with slow, obvious pure-Python versions. Events outside ``[t0, t1)`` are ignored; polarity 0 is OFF, 1 ON.

Each representation is one small frozen class holding only its own parameters (in parentheses below its name),
registered by name in :data:`REPRESENTATIONS`; :func:`build_representation` takes a name and a whole
``events`` config block and keeps the parameters the chosen class declares in its ``parameters``.

=================  ==  ===========================================================================
name (parameters)  C   value
=================  ==  ===========================================================================
periodic_frame     3   Prophesee's periodic frame: background, or the colour of the polarity of the
                       *last* event (stream order) at the pixel; RGB channel order (OpenCV's frames are
(palette)              BGR). Palettes as in Metavision (``colors_impl.h``): ``dark`` (default),
                       ``light``, ``coolwarm``; ``gray`` (C=1: background 128, ON 255, OFF 0).
histogram          2   event counts per polarity (channel 0 OFF, 1 ON), saturating at 255.
time_surface       2   per polarity, ``round(255 * exp(-(t1 - t_last) / tau))`` with ``t_last`` the
(tau_us)               newest event of that polarity at the pixel, 0 where there is none (HOTS, with
                       the window end as reference time).
voxel_grid         B   Zhu et al.'s voxel grid, ``V[b] = sum s_i max(0, 1 - |b - t*_i|)`` with
(bins)                 ``t*_i = (B-1)(t_i - t0)/(t1 - t0)`` (window bounds, so the grid is a pure function
                       of the window), ``s_i = +-1``; stored as ``clip(round(128 + 16 V), 0, 255)``,
                       so ``V = (frame - 128) / 16`` (attrs ``value_offset`` / ``value_scale``).
tbr                1   Temporal Binary Representation (Innocenti et al. 2020): N <= 8 equal bins,
(bins)                 ``b_i = 1`` if any event (either polarity) falls in bin i, value
                       ``sum b_i 2^i``: bin 0 (oldest) is the least significant bit, the newest bin the
                       most significant one.
=================  ==  ===========================================================================

Resizing. Frames are rendered directly at the configured size by mapping each event's pixel to
``(x * W // W_sensor, y * H // H_sensor)`` before accumulation. This is the resize that fits each
representation: counts and voxel values are *summed* over the sensor pixels of an output pixel (sparse
events are never averaged away), TBR bits are OR-ed, time surfaces keep the newest event, and periodic
frames keep the last event among the block, which is what Metavision would draw on a sensor of that size.
Width and height scale independently; keep the sensor's aspect ratio in the configuration if wanted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numba as nb
import numpy as np

from ..errors import FacemorphicError

#: Palettes as (background, OFF, ON) RGB triplets; index = stored code (0 none, 1 OFF, 2 ON).
PALETTES = {
    "dark": ((30, 37, 52), (64, 126, 200), (255, 255, 255)),
    "light": ((255, 255, 255), (30, 37, 52), (64, 126, 200)),
    "coolwarm": ((217, 224, 237), (87, 123, 198), (255, 113, 117)),
    "gray": ((128,), (0,), (255,)),
}

MODE_PERIODIC, MODE_HISTOGRAM, MODE_TIME_SURFACE, MODE_VOXEL, MODE_TBR = range(5)


def coordinate_map(sensor_side: int, out_side: int) -> np.ndarray:
    """``int64 [sensor_side]``: output coordinate of each sensor coordinate (``v * out // sensor``)."""
    return (np.arange(sensor_side, dtype=np.int64) * out_side) // sensor_side


@nb.njit(cache=True, nogil=True, inline="always")
def locate_window(time, starts, ends, k):
    """Window index holding ``time`` by moving cursor ``k`` (windows tile: ends[k] == starts[k+1]).

    Returns -1 before the first window and ``len(starts)`` at or after the last window's end.
    """
    n = starts.shape[0]
    if k < 0:
        k = 0
    if k >= n:
        k = n - 1
    while k + 1 < n and time >= starts[k + 1]:
        k += 1
    while k > 0 and time < starts[k]:
        k -= 1
    if time < starts[k]:
        return -1
    if time >= ends[k]:
        return n
    return k


@nb.njit(cache=True, nogil=True)
def _accumulate(t, x, y, p, xmap, ymap, starts, visible, ends, k0, cursor, ring_u8, ring_i64, ring_f64, counts,
                mode):
    """Fold events into the ring of the representation (one slot per open window, slot = k % R).

    One kernel serves every representation; its ring is whichever of ``ring_u8`` (periodic_frame, tbr),
    ``ring_i64`` (histogram, time_surface) or ``ring_f64`` (voxel_grid) the mode uses, the others are
    empty placeholders (one compiled signature for all).

    ``starts``/``ends`` tile time; an event of window k counts only if ``t >= visible[k]`` (accumulation
    shorter than the frame period). Windows below ``k0`` are already finalized: their events are dropped
    and counted in ``cursor[1]``. Stops before the first event whose window is ``>= k0 + R`` and returns
    its index. ``cursor`` = [window cursor, late events dropped, tbr bins].
    """
    n_slots = counts.shape[0]
    bins = ring_f64.shape[1]
    n = t.shape[0]
    k = cursor[0]
    n_windows = starts.shape[0]
    for i in range(n):
        ti = t[i]
        k = locate_window(ti, starts, ends, k)
        if k < 0 or k >= n_windows:
            k = max(0, min(k, n_windows - 1))
            continue
        if k >= k0 + n_slots:
            cursor[0] = k
            return i
        if k < k0:
            cursor[1] += 1
            continue
        s = visible[k]
        if ti < s:
            continue
        slot = k % n_slots
        xo = xmap[x[i]]
        yo = ymap[y[i]]
        pol = p[i]
        counts[slot] += 1
        if mode == MODE_PERIODIC:
            ring_u8[slot, 0, yo, xo] = 1 + pol
        elif mode == MODE_HISTOGRAM:
            ring_i64[slot, pol, yo, xo] += 1
        elif mode == MODE_TIME_SURFACE:
            rel = ti - s + 1
            if rel > ring_i64[slot, pol, yo, xo]:
                ring_i64[slot, pol, yo, xo] = rel
        elif mode == MODE_VOXEL:
            tstar = (bins - 1) * (ti - s) / (ends[k] - s)
            lo = int(np.floor(tstar))
            frac = tstar - lo
            sign = 1.0 if pol == 1 else -1.0
            ring_f64[slot, lo, yo, xo] += sign * (1.0 - frac)
            if lo + 1 < bins:
                ring_f64[slot, lo + 1, yo, xo] += sign * frac
        else:  # MODE_TBR; ring[:, 0] holds the bits, ring.shape[1] == 1, N in cursor[2]
            nbits = cursor[2]
            b = (nbits * (ti - s)) // (ends[k] - s)
            ring_u8[slot, 0, yo, xo] |= np.uint8(1 << b)
    cursor[0] = k
    return n


@nb.njit(cache=True, nogil=True)
def _paint(codes, lut):
    """Codes ``[H, W]`` (0 background, 1 OFF, 2 ON) -> colours ``[C, H, W]`` from ``lut [3, C]``.

    A select per pixel rather than a table lookup: it vectorises, about 10x faster on a full HD frame.
    """
    height, width = codes.shape
    channels = lut.shape[1]
    out = np.empty((channels, height * width), np.uint8)
    flat = codes.reshape(-1)
    for c in range(channels):
        background, off, on = lut[0, c], lut[1, c], lut[2, c]
        plane = out[c]
        for i in range(height * width):
            code = flat[i]
            plane[i] = background if code == 0 else (off if code == 1 else on)
    return out.reshape(channels, height, width)


_NO_U8 = np.zeros((0, 0, 0, 0), np.uint8)
_NO_I64 = np.zeros((0, 0, 0, 0), np.int64)
_NO_F64 = np.zeros((0, 0, 0, 0), np.float64)


def accumulate(t, x, y, p, xmap, ymap, starts, visible, ends, k0, cursor, ring, counts, mode) -> int:
    """Fold events into ``ring`` (from :meth:`Representation.new_ring`); see :func:`_accumulate`.

    Returns the index of the first event not consumed (its window is beyond the ring).
    """
    u8 = ring if ring.dtype == np.uint8 else _NO_U8
    i64 = ring if ring.dtype == np.int64 else _NO_I64
    f64 = ring if ring.dtype == np.float64 else _NO_F64
    return _accumulate(t, x, y, p, xmap, ymap, starts, visible, ends, k0, cursor, u8, i64, f64, counts, mode)


class Representation:
    """What every representation offers the frame builder; one frozen subclass per representation.

    A subclass holds only its own parameters (dataclass fields, named in ``parameters``) and checks them
    in ``__post_init__``; ``channels`` is C of the frames it produces. The registry
    :data:`REPRESENTATIONS` maps each ``name`` to its class, in the manner of tonic's transforms, so a
    configuration block picks one by name and hands it only the parameters it declares
    (:func:`build_representation`).
    """

    name: ClassVar[str]
    mode: ClassVar[int]
    parameters: ClassVar[tuple[str, ...]] = ()
    #: accumulation buffer: (depth A, dtype), see :meth:`new_ring`
    ring_depth: ClassVar[int] = 1
    ring_dtype: ClassVar[type] = np.uint8

    @property
    def channels(self) -> int:
        raise NotImplementedError

    def own_attrs(self) -> dict:
        """Parameters that describe the stored values, besides the name."""
        return {}

    def attrs(self) -> dict:
        """Written as HDF5 attributes: the name, the parameters and how to read the stored values."""
        return {"representation": self.name, **self.own_attrs()}

    def new_ring(self, n_slots: int, height: int, width: int) -> np.ndarray:
        """Zeroed accumulation buffer ``[n_slots, A, height, width]`` of the dtype the kernel needs."""
        return np.zeros((n_slots, self.ring_depth, height, width), dtype=self.ring_dtype)

    def finalize(self, acc: np.ndarray, t0: int, t1: int) -> np.ndarray:
        """Accumulated buffer of one window ``[A, H, W]`` -> ``uint8 [C, H, W]``."""
        raise NotImplementedError

    def cursor(self) -> np.ndarray:
        """Kernel cursor: [window cursor, late events, tbr bins]."""
        return np.array([0, 0, 0], dtype=np.int64)


@dataclass(frozen=True)
class PeriodicFrame(Representation):
    """Prophesee's periodic frame in one of the :data:`PALETTES` (``gray``: one channel)."""

    palette: str = "dark"
    name: ClassVar[str] = "periodic_frame"
    mode: ClassVar[int] = MODE_PERIODIC
    parameters: ClassVar[tuple[str, ...]] = ("palette",)

    def __post_init__(self):
        if self.palette not in PALETTES:
            raise FacemorphicError(f"option 'palette': {self.palette!r} is not one of {list(PALETTES)}")

    @property
    def channels(self) -> int:
        return 1 if self.palette == "gray" else 3

    def own_attrs(self) -> dict:
        return {"palette": self.palette, "channel_order": "gray" if self.palette == "gray" else "RGB"}

    def finalize(self, acc, t0, t1):
        return _paint(acc[0], np.array(PALETTES[self.palette], dtype=np.uint8))


@dataclass(frozen=True)
class Histogram(Representation):
    """Event counts per polarity, saturating at 255; no parameters."""

    name: ClassVar[str] = "histogram"
    mode: ClassVar[int] = MODE_HISTOGRAM
    ring_depth: ClassVar[int] = 2
    ring_dtype: ClassVar[type] = np.int64

    @property
    def channels(self) -> int:
        return 2

    def own_attrs(self) -> dict:
        return {"channel_order": "OFF,ON", "saturation": 255}

    def finalize(self, acc, t0, t1):
        return np.minimum(acc, 255).astype(np.uint8)


@dataclass(frozen=True)
class TimeSurface(Representation):
    """Exponentially decayed time of the newest event per polarity, decay constant ``tau_us``."""

    tau_us: float = 10000.0
    name: ClassVar[str] = "time_surface"
    mode: ClassVar[int] = MODE_TIME_SURFACE
    parameters: ClassVar[tuple[str, ...]] = ("tau_us",)
    ring_depth: ClassVar[int] = 2
    ring_dtype: ClassVar[type] = np.int64

    def __post_init__(self):
        if not self.tau_us > 0:
            raise FacemorphicError(f"option 'tau_us': time_surface needs a positive decay constant, got {self.tau_us}")

    @property
    def channels(self) -> int:
        return 2

    def own_attrs(self) -> dict:
        return {"channel_order": "OFF,ON", "tau_us": float(self.tau_us)}

    def finalize(self, acc, t0, t1):
        age = (t1 - t0 + 1) - acc  # t1 - t_last, with acc = t_last - t0 + 1
        value = np.rint(255.0 * np.exp(-age / self.tau_us))
        return np.where(acc > 0, value, 0).astype(np.uint8)


@dataclass(frozen=True)
class VoxelGrid(Representation):
    """Zhu et al.'s voxel grid of ``bins`` temporal bins, stored as ``128 + VALUE_SCALE * V``.

    The scale is fixed rather than an option: 16 steps per unit of V keeps up to about +-8 net events
    per bin and pixel before clipping, and the stored attrs (``value_offset``, ``value_scale``) say how to
    get V back, so nothing downstream depends on the constant.
    """

    bins: int = 5
    name: ClassVar[str] = "voxel_grid"
    mode: ClassVar[int] = MODE_VOXEL
    parameters: ClassVar[tuple[str, ...]] = ("bins",)
    ring_dtype: ClassVar[type] = np.float64
    VALUE_SCALE: ClassVar[float] = 16.0

    def __post_init__(self):
        if self.bins < 2:
            raise FacemorphicError(f"option 'bins': voxel_grid needs at least 2 bins, got {self.bins}")

    @property
    def channels(self) -> int:
        return self.bins

    @property
    def ring_depth(self) -> int:  # type: ignore[override]
        return self.bins

    def own_attrs(self) -> dict:
        return {"bins": self.bins, "value_offset": 128, "value_scale": self.VALUE_SCALE}

    def finalize(self, acc, t0, t1):
        return np.clip(np.rint(128.0 + self.VALUE_SCALE * acc), 0, 255).astype(np.uint8)


@dataclass(frozen=True)
class Tbr(Representation):
    """Temporal Binary Representation of ``bins`` <= 8 bins, one bit each in a uint8."""

    bins: int = 5
    name: ClassVar[str] = "tbr"
    mode: ClassVar[int] = MODE_TBR
    parameters: ClassVar[tuple[str, ...]] = ("bins",)

    def __post_init__(self):
        if not 1 <= self.bins <= 8:
            raise FacemorphicError(f"option 'bins': tbr needs 1..8 bins (one uint8 per pixel), got {self.bins}")

    @property
    def channels(self) -> int:
        return 1

    def own_attrs(self) -> dict:
        return {"bins": self.bins, "bit_order": "bin 0 (oldest) = least significant bit"}

    def finalize(self, acc, t0, t1):
        return acc.astype(np.uint8)

    def cursor(self) -> np.ndarray:
        return np.array([0, 0, self.bins], dtype=np.int64)


#: name -> class; the order is the kernel's mode numbering
REPRESENTATIONS: dict[str, type[Representation]] = {
    cls.name: cls for cls in (PeriodicFrame, Histogram, TimeSurface, VoxelGrid, Tbr)}


def build_representation(name: str, **block) -> Representation:
    """The representation ``name`` with the parameters it declares taken from ``block`` (others ignored).

    ``block`` is typically a whole ``events`` config block; a parameter the block lacks keeps the
    class default. Unknown names and bad values are :class:`FacemorphicError`\\ s naming the option.
    """
    if name not in REPRESENTATIONS:
        raise FacemorphicError(f"option 'representation': {name!r} is not one of {list(REPRESENTATIONS)}")
    cls = REPRESENTATIONS[name]
    return cls(**{key: block[key] for key in cls.parameters if key in block})


def render(rep: Representation | str, events: np.ndarray, t0: int, t1: int,
           sensor_size: tuple[int, int], size: tuple[int, int] | None = None) -> np.ndarray:
    """Render the events of ``[t0, t1)`` as ``uint8 [C, H, W]`` at ``size`` = (W, H) (default sensor size);
    ``rep`` is a representation or the name of one with its default parameters."""
    rep = build_representation(rep) if isinstance(rep, str) else rep
    if not t1 > t0:
        raise ValueError(f"empty window [{t0}, {t1})")
    width, height = size or sensor_size
    ring = rep.new_ring(1, height, width)
    counts = np.zeros(1, np.int64)
    bounds = np.array([t0], np.int64)
    accumulate(np.ascontiguousarray(events["t"], np.int64), np.ascontiguousarray(events["x"]),
               np.ascontiguousarray(events["y"]), np.ascontiguousarray(events["p"]),
               coordinate_map(sensor_size[0], width), coordinate_map(sensor_size[1], height),
               bounds, bounds, np.array([t1], np.int64), 0, rep.cursor(), ring, counts, rep.mode)
    return rep.finalize(ring[0], t0, t1)
