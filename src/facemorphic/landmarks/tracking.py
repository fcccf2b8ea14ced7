"""Video-aware landmarking: detect, track, fill short gaps, smooth; one face per recording.

Tracking is sequential by nature (frame k's face box comes from frame k-1), which would leave a GPU
landmark network running one face at a time. :func:`track_video` therefore cuts each chunk of frames the
reader delivers into ``lanes`` contiguous segments and advances all segments in lockstep: step i fits
frame i of every segment in one batch. Within a segment tracking is exact; each segment starts with a
detection except the first of a chunk, which continues the previous chunk's last segment, so one lane
(``lanes=1``, the dlib default) is plain frame-by-frame tracking with detection only on the first frame
and after a loss. A chunk of ``lanes * lane_frames`` frames costs ``lanes - 1`` extra detections.

A frame is detected when its segment has no face yet or lost it: tracking found no box, or the fitted
landmarks fail the backend's acceptance test (e.g. FAN's heatmap score). Among several detections the face
nearest the recording's last face is taken, else the largest (:func:`choose_face`). Frames without a face
are invalid (landmarks NaN). :func:`fill_gaps` then interpolates runs of at most ``max_gap`` invalid frames
between two valid ones (flagged ``interpolated``), and :func:`smooth_track` optionally applies a
Savitzky-Golay filter along time inside runs of valid frames.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import numpy as np

from ..video.reader import FrameBatch
from .backends import N_LANDMARKS, LandmarkBackend, box_from_points, choose_face


@dataclass
class LandmarkTrack:
    """Per-frame landmarks of one recording, in the DESIGN.md landmarks contract plus provenance flags.

    ``landmarks`` float32 ``[T, 68, 3]`` (pixels; NaN where invalid), ``bbox`` float32 ``[T, 4]`` (tight box
    of the landmarks' x, y), ``score`` float32 ``[T]`` (backend's confidence; 0 where invalid), ``valid``,
    ``interpolated`` (filled by :func:`fill_gaps`), ``detected`` (the face detector ran for this frame)
    and ``decoded`` (the frame was read) bool ``[T]``, ``time_s`` float64 ``[T]`` (NaN where not decoded).
    """

    landmarks: np.ndarray
    bbox: np.ndarray
    score: np.ndarray
    valid: np.ndarray
    interpolated: np.ndarray
    detected: np.ndarray
    decoded: np.ndarray
    time_s: np.ndarray

    @classmethod
    def empty(cls, n_frames: int) -> "LandmarkTrack":
        return cls(
            landmarks=np.full((n_frames, N_LANDMARKS, 3), np.nan, dtype=np.float32),
            bbox=np.full((n_frames, 4), np.nan, dtype=np.float32),
            score=np.zeros(n_frames, dtype=np.float32),
            valid=np.zeros(n_frames, dtype=bool),
            interpolated=np.zeros(n_frames, dtype=bool),
            detected=np.zeros(n_frames, dtype=bool),
            decoded=np.zeros(n_frames, dtype=bool),
            time_s=np.full(n_frames, np.nan, dtype=np.float64),
        )

    def __len__(self) -> int:
        return len(self.valid)

    def update_boxes(self) -> None:
        """Recompute ``bbox`` from the landmarks (after interpolation or smoothing)."""
        self.bbox[:] = np.where(self.valid[:, None], box_from_points(self.landmarks), np.nan)


@dataclass
class _Lane:
    points: np.ndarray | None = None  # previous frame's landmarks [68, 3]
    box: np.ndarray | None = None  # previous frame's box in the backend's convention [4]


class _Tracker:
    """Holds the cross-chunk state: the continuing lane and the recording's last valid face box."""

    def __init__(self, backend: LandmarkBackend, track: LandmarkTrack):
        self.backend = backend
        self.track = track
        self.carry = _Lane()
        self.reference_box: np.ndarray | None = None

    def _detect_and_fit(self, images, lane_states):
        """Detect in ``images``, choose one face each and fit it; returns (points, scores, ok, boxes)."""
        detections = self.backend.detect(images)
        boxes = np.full((len(images), 4), np.nan)
        scores = np.zeros(len(images))
        for k, (candidates, lane) in enumerate(zip(detections, lane_states)):
            chosen = choose_face(candidates, lane.box if lane.box is not None else self.reference_box)
            if chosen is not None:
                boxes[k], scores[k] = chosen[:4], chosen[4]
        found = np.all(np.isfinite(boxes), axis=1)
        points = np.full((len(images), N_LANDMARKS, 3), np.nan, dtype=np.float32)
        if found.any():
            fitted, fit_scores = self.backend.fit([images[k] for k in np.flatnonzero(found)], boxes[found])
            points[found] = fitted
            if fit_scores is not None:
                scores[found] = fit_scores
        ok = found.copy()
        ok[found] = self.backend.accept(scores[found])
        return points, scores, ok, boxes

    def process_chunk(self, batch: FrameBatch, n_lanes: int) -> None:
        count = len(batch)
        segments = [seg for seg in np.array_split(np.arange(count), min(n_lanes, count)) if len(seg)]
        lanes = [self.carry] + [_Lane() for _ in segments[1:]]
        for step in range(max(len(seg) for seg in segments)):
            active = [lane_id for lane_id, seg in enumerate(segments) if step < len(seg)]
            positions = [segments[lane_id][step] for lane_id in active]
            images = [batch.images[p] for p in positions]
            points = np.full((len(active), N_LANDMARKS, 3), np.nan, dtype=np.float32)
            scores = np.zeros(len(active))
            ok = np.zeros(len(active), dtype=bool)
            used_boxes = np.full((len(active), 4), np.nan)
            detected = np.zeros(len(active), dtype=bool)

            tracked = [k for k, lane_id in enumerate(active) if lanes[lane_id].points is not None]
            if tracked:
                prev_points = np.stack([lanes[active[k]].points for k in tracked])
                prev_boxes = np.stack([lanes[active[k]].box for k in tracked])
                boxes, box_scores = self.backend.track([images[k] for k in tracked], prev_points, prev_boxes)
                have = np.all(np.isfinite(boxes), axis=1)
                if have.any():
                    keep = [tracked[k] for k in np.flatnonzero(have)]
                    fitted, fit_scores = self.backend.fit([images[k] for k in keep], boxes[have])
                    frame_scores = box_scores[have] if fit_scores is None else fit_scores
                    accepted = self.backend.accept(frame_scores)
                    for j, k in enumerate(keep):
                        points[k], scores[k], ok[k] = fitted[j], frame_scores[j], accepted[j]
                        used_boxes[k] = boxes[have][j]

            to_detect = [k for k in range(len(active)) if not ok[k]]
            if to_detect:
                det_points, det_scores, det_ok, det_boxes = self._detect_and_fit(
                    [images[k] for k in to_detect], [lanes[active[k]] for k in to_detect])
                for j, k in enumerate(to_detect):
                    points[k], scores[k], ok[k], used_boxes[k] = det_points[j], det_scores[j], det_ok[j], det_boxes[j]
                    detected[k] = True

            for k, lane_id in enumerate(active):
                frame = int(batch.indices[positions[k]])
                lane = lanes[lane_id]
                if frame >= len(self.track):
                    continue
                self.track.detected[frame] = detected[k]
                if ok[k]:
                    self.track.landmarks[frame] = points[k]
                    self.track.score[frame] = scores[k]
                    self.track.valid[frame] = True
                    lane.points, lane.box = points[k], used_boxes[k]
                    self.reference_box = used_boxes[k]
                else:
                    lane.points, lane.box = None, None
        self.carry = lanes[-1]


def track_video(backend: LandmarkBackend, batches: Iterable[FrameBatch], n_frames: int,
                lanes: int = 1, progress=None) -> LandmarkTrack:
    """Landmarks for frames ``0..n_frames-1`` of one stream; frames never delivered stay invalid.

    ``batches`` come from :meth:`facemorphic.video.RgbReader.batches` (ideally ``lanes * k`` frames each);
    ``lanes`` is how many frames the landmark network sees per call. Frames with an index at or beyond
    ``n_frames`` are ignored (the caller compares with what it expected). ``progress`` is an optional
    tqdm-like object updated with the number of frames done.
    """
    track = LandmarkTrack.empty(n_frames)
    tracker = _Tracker(backend, track)
    for batch in batches:
        inside = batch.indices < n_frames
        track.decoded[batch.indices[inside]] = True
        track.time_s[batch.indices[inside]] = batch.times_s[inside]
        tracker.process_chunk(batch, lanes)
        if progress is not None:
            progress.update(len(batch))
    track.update_boxes()
    return track


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """``[start, stop)`` of every run of True in a bool array."""
    padded = np.concatenate([[False], mask, [False]])
    edges = np.flatnonzero(np.diff(padded.astype(np.int8)))
    return list(zip(edges[::2], edges[1::2]))


def fill_gaps(track: LandmarkTrack, max_gap: int) -> int:
    """Linearly interpolate runs of at most ``max_gap`` invalid frames between two valid frames, in place.

    Filled frames become valid with ``interpolated`` set and the lower of the two neighbours' scores.
    Gaps at the start or end of the recording have one neighbour only and stay invalid. Returns the number
    of frames filled.
    """
    filled = 0
    if max_gap <= 0:
        return 0
    for start, stop in _runs(~track.valid):
        if start == 0 or stop == len(track) or stop - start > max_gap:
            continue
        before, after = track.landmarks[start - 1], track.landmarks[stop]
        weights = (np.arange(start, stop) - (start - 1)) / (stop - (start - 1))
        track.landmarks[start:stop] = (1 - weights)[:, None, None] * before + weights[:, None, None] * after
        track.score[start:stop] = min(track.score[start - 1], track.score[stop])
        track.valid[start:stop] = True
        track.interpolated[start:stop] = True
        filled += int(stop - start)
    track.update_boxes()
    return filled


def smooth_track(track: LandmarkTrack, window: int, polyorder: int = 2) -> None:
    """Savitzky-Golay smoothing of the landmarks along time, inside each run of valid frames, in place.

    ``window`` (frames, made odd) of 0 or 1 leaves the track as it is; runs shorter than the window are
    left unsmoothed rather than smoothed with a different filter. Savitzky-Golay rather than a moving
    average because it keeps the height of short peaks (an AU's apex) while removing jitter.
    """
    if window <= 1:
        return
    from scipy.signal import savgol_filter

    window = window if window % 2 else window + 1
    polyorder = min(polyorder, window - 1)
    for start, stop in _runs(track.valid):
        if stop - start >= window:
            track.landmarks[start:stop] = savgol_filter(track.landmarks[start:stop], window, polyorder,
                                                        axis=0, mode="interp")
    track.update_boxes()
