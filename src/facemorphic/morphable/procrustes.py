"""Rigid (rotation + translation, no scale) alignment of corresponding point sets.

Scans of one topology carry head pose and small registration jitter that must not leak into the shape
models, so every mesh is aligned to a reference before PCA or dictionary learning. Scale is kept: it is
identity information (head size), not pose. The rotation is the Kabsch solution (SVD of the
cross-covariance, reflection excluded), written here because it is a few lines and scipy's
``Rotation.align_vectors`` works on one pair at a time.
"""

from __future__ import annotations

import numpy as np


def rigid_transform(source: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rotation ``R`` (3x3) and translation ``t`` minimising ``||source @ R.T + t - target||``.

    Works on one pair ``[N, 3]`` or a batch ``[B, N, 3]`` against one ``target`` ``[N, 3]``.
    """
    src_mean = source.mean(axis=-2, keepdims=True)
    tgt_mean = target.mean(axis=-2, keepdims=True)
    cross = np.swapaxes(target - tgt_mean, -1, -2) @ (source - src_mean)
    u, _, vt = np.linalg.svd(cross)
    sign = np.sign(np.linalg.det(u @ vt))
    correction = np.ones(u.shape[:-1])
    correction[..., -1] = sign
    rotation = (u * correction[..., None, :]) @ vt
    translation = tgt_mean[..., 0, :] - (src_mean @ np.swapaxes(rotation, -1, -2))[..., 0, :]
    return rotation, translation


def rigid_align(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """``source`` (``[N, 3]`` or ``[B, N, 3]``) moved rigidly onto ``target`` ``[N, 3]``."""
    rotation, translation = rigid_transform(source, target)
    return source @ np.swapaxes(rotation, -1, -2) + translation[..., None, :]


def generalised_procrustes(shapes: np.ndarray, iterations: int = 5) -> np.ndarray:
    """Align a stack ``[B, N, 3]`` rigidly to its own mean (iterated); returns the aligned stack.

    The first shape fixes the orientation of the frame the mean lives in.
    """
    aligned = rigid_align(shapes, shapes[0])
    for _ in range(iterations):
        mean = aligned.mean(axis=0)
        aligned = rigid_align(aligned, mean)
    return aligned
