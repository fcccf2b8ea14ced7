"""Landmark accuracy: normalised mean error, and the .pts annotation format (iBUG / menpo)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import InputFileError


def read_pts(path: str | Path) -> np.ndarray:
    """Read an iBUG ``.pts`` file (``version``, ``n_points``, then ``{ x y ... }``) as float64 ``[N, 2]``."""
    path = Path(path)
    text = path.read_text()
    try:
        body = text[text.index("{") + 1: text.index("}")]
        points = np.array(body.split(), dtype=np.float64).reshape(-1, 2)
    except ValueError as exc:
        raise InputFileError(path, f"not a .pts file: {exc}") from None
    return points


def inter_ocular_distance(points: np.ndarray) -> np.ndarray:
    """Distance between the eye centres (mean of points 36-41 and of 42-47, 0-based), ``[...]``."""
    return np.linalg.norm(points[..., 36:42, :2].mean(-2) - points[..., 42:48, :2].mean(-2), axis=-1)


def normalised_mean_error(predicted: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Mean point-to-point x,y distance divided by the true inter-ocular distance, per face ``[...]``."""
    distances = np.linalg.norm(predicted[..., :2] - truth[..., :2], axis=-1).mean(-1)
    return distances / inter_ocular_distance(truth)
