"""The ``rgb_face`` crop: RGB frames cropped to the face, from the landmarks stage's per-frame boxes.

Per recording, from its landmark track (read through :func:`facemorphic.landmarks.io.read_track_group`;
``bbox`` is the tight box ``x1, y1, x2, y2`` of the 68 points, ``valid`` says where a face was found or a
short gap interpolated by the landmarks stage):

1. each valid frame gives the box centre ``(cx, cy)`` and its larger side ``s = max(x2 - x1, y2 - y1)``;
2. frames without a valid face take the value interpolated linearly between the nearest valid frames
   before and after, or the nearest valid frame's value before the first / after the last valid frame
   (:func:`numpy.interp`); RGB frames past the end of a shorter track take its last box;
3. ``cx``, ``cy`` and ``s`` are each smoothed by a centred moving median over ``face_smoothing_frames``
   frames (an even count is rounded up to the next odd one; near the ends the window shrinks symmetrically,
   so it stays centred). A median removes single-frame misfits outright, where a mean would spread them
   over the window, and keeps monotone motion, a sudden head movement included, exactly;
4. the crop is the square of side ``face_margin * s`` centred on ``(cx, cy)``, in whole pixels
   (:func:`square_boxes`): a square larger than the image is shrunk to the image's shorter side, and a
   square crossing an edge is shifted back inside, so the crop stays square and the face is never squashed.

A recording whose track has no valid face at all has no face box: its ``rgb_face`` frames are the
``center`` crop (the central square), and the shard index and the sample's ``face_crop`` attr say so.

Event frames keep the full view (``shards.crop``): the RGB and event cameras are not calibrated against
each other (different viewpoints, lenses and resolutions), so an RGB face box has no known place in the
event image.

The face crop follows the head: translations of the head (part of the head-movement AUs 51-56) largely
leave the cropped frames, while rotations still show. The paper's RGB models (Table 3) were trained on its
own RGB frames, not on this crop (it describes no face crop), so ``rgb_face`` rows carry no paper numbers.
"""

from __future__ import annotations

import numpy as np

#: the sample attr ``face_crop`` and the index column of that name
FACE_CROP = "face"
FACE_FALLBACK = "center: no valid face"


def face_track(bbox: np.ndarray, valid: np.ndarray, n_frames: int, smoothing_frames: int) -> np.ndarray | None:
    """Smoothed ``[n_frames, 3]`` float64 ``(cx, cy, side)`` of the face box (module docstring, steps 1-3),
    or None when no frame has a valid face. ``bbox`` is ``[T, 4]`` (x1, y1, x2, y2), ``valid`` ``[T]``; T may
    differ from ``n_frames`` (extra track frames are ignored, missing ones are invalid)."""
    bbox = np.asarray(bbox, dtype=np.float64)[:n_frames]
    valid = np.asarray(valid, dtype=bool)[:n_frames] & np.all(np.isfinite(bbox), axis=1)
    valid = valid & (bbox[:, 2] >= bbox[:, 0]) & (bbox[:, 3] >= bbox[:, 1])
    if not valid.any():
        return None
    raw = np.stack([(bbox[:, 0] + bbox[:, 2]) / 2, (bbox[:, 1] + bbox[:, 3]) / 2,
                    np.maximum(bbox[:, 2] - bbox[:, 0], bbox[:, 3] - bbox[:, 1])], axis=1)
    known = np.flatnonzero(valid)
    frames = np.arange(n_frames)
    filled = np.stack([np.interp(frames, known, raw[known, k]) for k in range(3)], axis=1)
    return centred_median(filled, smoothing_frames)


def centred_median(values: np.ndarray, window: int) -> np.ndarray:
    """Moving median along axis 0 over a centred window of ``window`` frames (rounded up to odd), shrinking
    symmetrically at the ends (frame k uses frames ``k - r .. k + r`` with ``r = min(window // 2, k,
    T - 1 - k)``)."""
    values = np.asarray(values, dtype=np.float64)
    radius, n = max(int(window), 1) // 2, len(values)
    out = values.copy()
    if radius == 0:
        return out
    if n > 2 * radius:
        windows = np.lib.stride_tricks.sliding_window_view(values, 2 * radius + 1, axis=0)
        out[radius:n - radius] = np.median(windows, axis=-1)
    for k in sorted(set(range(min(radius, n))) | set(range(max(n - radius, 0), n))):
        r = min(radius, k, n - 1 - k)
        out[k] = np.median(values[k - r:k + r + 1], axis=0)
    return out


def square_boxes(track: np.ndarray, margin: float, height: int, width: int) -> np.ndarray:
    """Whole-pixel crop boxes ``[T, 4]`` int ``(top, bottom, left, right)`` (bottom and right exclusive) of
    the squares of side ``margin * side`` centred on ``(cx, cy)``, kept square and inside a ``height x
    width`` image (module docstring, step 4)."""
    track = np.asarray(track, dtype=np.float64)
    side = np.clip(np.round(margin * track[:, 2]), 1, min(height, width)).astype(np.int64)
    left = np.clip(np.round(track[:, 0] - side / 2), 0, width - side).astype(np.int64)
    top = np.clip(np.round(track[:, 1] - side / 2), 0, height - side).astype(np.int64)
    return np.stack([top, top + side, left, left + side], axis=1)
