"""Frame preparation for the shards: crop, resize to the model input size, and three channels.

RGB frames are read with the project's shared reader (PyAV for containers, JPEG folders ordered by the
frame index in the names). Both streams are cropped the same way (``center``: the central square, keeping
the aspect ratio the CNNs expect; ``full``: the whole frame, squashed) and resized with area averaging,
which is the right anti-aliasing for the large downscales here (1280x720 events or 640x480 RGB to 112x112).
The ``rgb_face`` stream crops each RGB frame to its own square face box instead (:mod:`.face`,
:func:`resize_boxes`), from the same decoding pass (:func:`read_rgb_views`).

What the models receive from the events. The events file stores ``[T, S*C, H, W]``: S sub-windows per RGB
frame, each with the C channels of its representation (the layout is read from the file's attrs, never
guessed from the shape; see :mod:`facemorphic.events.io`). The models take three channels, so after the
crop and resize (each stored channel alone) :func:`events_to_three_channels` maps them:

* S = 1, by the representation's C channels (:func:`to_three_channels`): C = 3 (periodic_frame, RGB)
  unchanged; C = 1 (tbr, gray periodic_frame) repeated; C = 2 (histogram, time_surface: OFF, ON) become
  (OFF, ON, round-down mean of the two); C > 3 (voxel_grid bins) are averaged, rounded, in three
  consecutive groups of bins (oldest, middle, newest; ``numpy.array_split`` sizes).
* S > 1, time first: each sub-window's C channels are reduced to one intensity channel, their rounded
  mean (for periodic_frame the mean of the colour's R, G, B, so the dark palette gives background 40,
  OFF 130, ON 255; for voxel_grid 128 + 16 times the mean over the bins), and the S intensity channels,
  in time order, go through the same mapping as C channels above: S = 2 gives (older, newer, their mean),
  S = 3 (older, middle, newer) one each, S > 3 three consecutive groups averaged.

So a model sees colour, polarity or time bins with one sub-window, and the motion inside an RGB frame
interval with several; never an average of channels of different kinds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Union

import numba as nb
import numpy as np

from ..errors import InputFileError
from .options import CROPS


def crop_box(height: int, width: int, crop: str) -> tuple[int, int, int, int]:
    """``(top, bottom, left, right)`` of the region kept by ``crop``."""
    if crop == "full":
        return 0, height, 0, width
    if crop == "center":
        side = min(height, width)
        top, left = (height - side) // 2, (width - side) // 2
        return top, top + side, left, left + side
    raise ValueError(f"crop must be one of {CROPS}, got {crop!r}")


@nb.njit(cache=True, nogil=True)
def _area_bin(i, n, size):
    """Input pixels [start, stop) averaged into output pixel ``i`` of ``size`` from ``n``: floor(i n / size)
    to ceil((i + 1) n / size), the bins of ``torch.nn.functional.interpolate(mode="area")``."""
    return (i * n) // size, ((i + 1) * n + size - 1) // size


@nb.njit(cache=True, nogil=True)
def _rounded_mean(total, count):
    """``total / count`` (integers) rounded half to even, as ``torch.round`` and ``numpy.round`` do."""
    mean, rest = total // count, total % count
    if 2 * rest > count or (2 * rest == count and mean % 2 == 1):
        mean += 1
    return mean


@nb.njit(cache=True, nogil=True)
def _area_resize_rows(rows, top, left, height, width, channels, out):
    """``out`` [N, size, size, C] = area average of the crop (``top``, ``left``, ``height``, ``width``) of
    ``rows`` [N, H, W * C] (uint8 images, each row its pixels' C interleaved channels).

    Each output row sums its input rows into one vector along memory (which compiles to vector
    instructions), then each output pixel sums its columns of that vector.
    """
    size = out.shape[1]
    span = width * channels
    col_sums = np.zeros(span, np.int32)  # at most 255 x H
    for n in range(rows.shape[0]):
        for i in range(size):
            y0, y1 = _area_bin(i, height, size)
            col_sums[:] = 0
            for y in range(top + y0, top + y1):
                row = rows[n, y, left * channels:left * channels + span]
                for k in range(span):
                    col_sums[k] += row[k]
            for j in range(size):
                x0, x1 = _area_bin(j, width, size)
                count = (y1 - y0) * (x1 - x0)
                for c in range(channels):
                    total = 0
                    for x in range(x0, x1):
                        total += col_sums[x * channels + c]
                    out[n, i, j, c] = _rounded_mean(total, count)


def _area_resize(frames: np.ndarray, box: tuple[int, int, int, int], size: int) -> np.ndarray:
    """uint8 ``[T, C, H, W]`` cropped to ``box`` = (top, bottom, left, right) -> uint8 ``[T, C, size, size]``."""
    top, bottom, left, right = (int(v) for v in box)
    if not (0 <= top < bottom <= frames.shape[2] and 0 <= left < right <= frames.shape[3]):
        raise ValueError(f"crop box {box} is empty or outside frames of {frames.shape[2]}x{frames.shape[3]}")
    if frames.dtype != np.uint8:
        raise ValueError(f"expected uint8 frames, got {frames.dtype}")
    # Exact integer sums, rounded half to even: the bytes of torch's interpolate(mode="area") rounded
    # (its float32 sums are exact too, for bins up to 2^15 pixels, every input size here; a quotient
    # that is not a half lies further from one than float32's spacing near 255). Why hand-written:
    # torch needs the crop as a contiguous float32 copy, four bytes per input byte, before pooling;
    # those copies took more than half of the shards stage. These loops read the bytes where they lie,
    # along memory: the rows of each plane, or each pixel's channels when they come last.
    n, channels, height, width = frames.shape
    if frames.strides[1] < frames.strides[3]:  # decoded video: each pixel's channels together
        rows = np.ascontiguousarray(frames.transpose(0, 2, 3, 1)).reshape(n, height, width * channels)
        out = np.empty((n, size, size, channels), dtype=np.uint8)
        _area_resize_rows(rows, top, left, bottom - top, right - left, channels, out)
        return np.ascontiguousarray(out.transpose(0, 3, 1, 2))
    # event frames: channel planes, each resized alone
    rows = np.ascontiguousarray(frames).reshape(n * channels, height, width)
    out = np.empty((n * channels, size, size, 1), dtype=np.uint8)
    _area_resize_rows(rows, top, left, bottom - top, right - left, 1, out)
    return out.reshape(n, channels, size, size)


def resize_frames(frames: np.ndarray, size: int, crop: str = "center") -> np.ndarray:
    """uint8 ``[T, C, H, W]`` -> uint8 ``[T, C, size, size]`` (crop, then area-average resize, rounded)."""
    if frames.ndim != 4:
        raise ValueError(f"expected frames [T, C, H, W], got shape {frames.shape}")
    return _area_resize(frames, crop_box(frames.shape[2], frames.shape[3], crop), size)


def to_three_channels(frames: np.ndarray) -> np.ndarray:
    """Map ``[T, K, H, W]`` frames of any channel count K to 3 channels, by count (module docstring)."""
    channels = frames.shape[1]
    if channels == 3:
        return frames
    if channels == 1:
        return np.repeat(frames, 3, axis=1)
    if channels == 2:
        mean = ((frames[:, 0:1].astype(np.uint16) + frames[:, 1:2]) // 2).astype(np.uint8)
        return np.concatenate([frames, mean], axis=1)
    groups = np.array_split(np.arange(channels), 3)
    return np.stack([frames[:, g].mean(axis=1).round().astype(np.uint8) for g in groups], axis=1)


def events_to_three_channels(frames: np.ndarray, subwindows: int, channels_per_subwindow: int) -> np.ndarray:
    """Event frames ``[T, S*C, H, W]`` of layout (S, C) -> the models' ``[T, 3, H, W]`` (module docstring)."""
    n, total, height, width = frames.shape
    if total != subwindows * channels_per_subwindow:
        raise ValueError(f"{total} channels are not S={subwindows} x C={channels_per_subwindow}")
    if subwindows == 1:
        return to_three_channels(frames)
    per_subwindow = frames.reshape(n, subwindows, channels_per_subwindow, height, width)
    intensity = per_subwindow.mean(axis=2).round().astype(np.uint8)
    return to_three_channels(intensity)


def resize_boxes(frames: np.ndarray, boxes: np.ndarray, size: int) -> np.ndarray:
    """uint8 ``[T, C, H, W]`` -> uint8 ``[T, C, size, size]``: frame k cropped to ``boxes[k]`` = ``(top,
    bottom, left, right)`` (whole pixels, bottom and right exclusive), then area-average resized, rounded."""
    if frames.ndim != 4 or len(boxes) != len(frames):
        raise ValueError(f"expected frames [T, C, H, W] and boxes [T, 4], got {frames.shape} and {np.shape(boxes)}")
    out = np.empty((frames.shape[0], frames.shape[1], size, size), dtype=np.uint8)
    for k, box in enumerate(np.asarray(boxes, dtype=np.int64)):
        out[k] = _area_resize(frames[k:k + 1], box, size)[0]
    return out


#: a view of the RGB frames: a crop name (:data:`CROPS`), or a function ``(indices, height, width) ->
#: boxes [len(indices), 4]`` giving each frame's own crop box
RgbView = Union[str, Callable[[np.ndarray, int, int], np.ndarray]]


def read_rgb_views(path: str | Path, size: int, views: dict[str, RgbView]) -> tuple[dict[str, np.ndarray], int]:
    """Decode every RGB frame once and crop it for each view (``{name: crop name or box function}``, see
    :data:`RgbView`): ``{name: uint8 [T, 3, size, size]}`` and the number of frames that could not be decoded.

    Reading goes through :func:`facemorphic.video.reader.open_rgb`, the reader every stage shares, so frame
    k here is frame k for the landmarks and the coefficients too. Frames that could not be decoded keep
    their place: they repeat the previous decoded frame (black before the first). Frames are resized as they
    are decoded, so a recording never sits in memory at full resolution.
    """
    from ..video.reader import open_rgb

    reader = open_rgb(path)
    n_frames = reader.info.n_frames
    out = {name: np.zeros((n_frames, 3, size, size), dtype=np.uint8) for name in views}
    decoded = np.zeros(n_frames, dtype=bool)
    for batch in reader.batches(32):
        keep = batch.indices < n_frames
        indices = batch.indices[keep]
        # a masked copy only when a frame is left out: copying every batch took a sixth of the stage
        images = (batch.images if keep.all() else batch.images[keep]).transpose(0, 3, 1, 2)
        for name, view in views.items():
            if isinstance(view, str):
                out[name][indices] = resize_frames(images, size, view)
            else:
                out[name][indices] = resize_boxes(images, view(indices, images.shape[2], images.shape[3]), size)
        decoded[indices] = True
    if not decoded.any():
        raise InputFileError(path, "no RGB frame could be decoded")
    for k in np.flatnonzero(~decoded):
        if k > 0:
            for frames in out.values():
                frames[k] = frames[k - 1]
    return out, int((~decoded).sum())


def read_rgb_frames(path: str | Path, size: int, crop: str = "center") -> tuple[np.ndarray, int]:
    """Decode every RGB frame (video file or JPEG folder), resized: uint8 ``[T, 3, size, size]``, and gaps
    (:func:`read_rgb_views` with one view, ``crop``)."""
    frames, missing = read_rgb_views(path, size, {"rgb": crop})
    return frames["rgb"], missing
