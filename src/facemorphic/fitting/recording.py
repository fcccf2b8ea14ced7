"""The two-step fit of one recording: identity on the first valid frame, AU coefficients on every frame.

By the FACEMORPHIC protocol a recording starts from a neutral face, so the identity coefficients
``alpha_id`` are fitted with the identity model on the first frame that has a valid face; the AU
coefficients are then fitted on every valid frame with the AU model, the identity shape
``S_I = T + C_I alpha_id`` serving as template. Frames without a valid face (``valid`` false in the
landmarks file, or any non-finite landmark among those used) get NaN coefficients, camera and residual and
``valid = False``.

The landmark subset: the inner mouth corners 60 and 64 are dropped by default (the Florence models have
no vertices for them, and detectors place them poorly); the jaw contour 0-16 can be dropped too, which
is advisable with detectors whose jaw follows the visible silhouette (dlib, FAN 2D).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..morphable.model import N_LANDMARKS, MorphableModel
from .closed_form import FitOptions, LandmarkBasis, fit_frames

INNER_MOUTH_CORNERS = (60, 64)
JAW = tuple(range(17))


def landmark_subset(drop: tuple[int, ...] = INNER_MOUTH_CORNERS, drop_jaw: bool = False) -> np.ndarray:
    """Indices (iBUG-68) of the landmarks used by the fit."""
    dropped = set(drop) | (set(JAW) if drop_jaw else set())
    bad = [i for i in dropped if not 0 <= i < N_LANDMARKS]
    if bad:
        raise ValueError(f"landmark indices {bad} outside 0..67")
    return np.array([i for i in range(N_LANDMARKS) if i not in dropped], dtype=np.int64)


@dataclass
class RecordingFit:
    alpha_au: np.ndarray  # [T, K] (NaN where invalid)
    alpha_id: np.ndarray  # [K_id] (NaN when no valid frame)
    camera: np.ndarray  # [T, 2, 4]
    residual_px: np.ndarray  # [T]
    valid: np.ndarray  # [T] bool
    identity_frame: int  # -1 when no valid frame


class LandmarkFitter:
    """A model reduced to the chosen landmarks, ready to fit recordings (precomputes once per model)."""

    def __init__(self, model: MorphableModel, landmark_idx: np.ndarray | None = None,
                 id_options: FitOptions = FitOptions(), au_options: FitOptions = FitOptions()):
        self.landmark_idx = landmark_subset() if landmark_idx is None else np.asarray(landmark_idx)
        self.template = model.landmark_points(model.template)[self.landmark_idx]
        self.id_basis = LandmarkBasis(model.landmark_basis(model.id_basis)[self.landmark_idx], model.id_weights)
        self.au_basis = LandmarkBasis(model.landmark_basis(model.au_basis)[self.landmark_idx], model.au_weights)
        self.id_options = id_options
        self.au_options = au_options

    def fit(self, landmarks: np.ndarray, valid: np.ndarray | None = None) -> RecordingFit:
        """Fit one recording's landmarks ``[T, 68, >=2]`` (pixels; only x, y are used)."""
        points = np.asarray(landmarks, dtype=np.float64)[:, self.landmark_idx, :2]
        n_frames = len(points)
        ok = np.isfinite(points).all(axis=(1, 2))
        # a frame whose landmarks collapse to a point (a detector placeholder) defines no camera
        spread = np.sqrt(np.nansum((points - np.nanmean(points, axis=1, keepdims=True)) ** 2, axis=(1, 2)))
        ok &= spread > 1e-3
        if valid is not None:
            ok &= np.asarray(valid, dtype=bool)
        k_au, k_id = self.au_basis.n_components, self.id_basis.n_components
        alpha_au = np.full((n_frames, k_au), np.nan)
        camera = np.full((n_frames, 2, 4), np.nan)
        residual = np.full(n_frames, np.nan)
        if not ok.any():
            return RecordingFit(alpha_au, np.full(k_id, np.nan), camera, residual, ok, -1)
        first = int(np.argmax(ok))
        identity = fit_frames(points[first:first + 1], self.template, self.id_basis, self.id_options)
        alpha_id = identity.alpha[0]
        identity_template = self.template + self.id_basis.basis @ alpha_id
        au = fit_frames(points[ok], identity_template, self.au_basis, self.au_options)
        alpha_au[ok], camera[ok], residual[ok] = au.alpha, au.camera, au.residual
        return RecordingFit(alpha_au, alpha_id, camera, residual, ok, first)
