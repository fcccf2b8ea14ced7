"""Rigid (rotation + translation, no scale) alignment of corresponding point sets.

Scans of one topology carry head pose and small registration jitter that must not leak into the shape
models, so every mesh is aligned to a reference before PCA or dictionary learning. Scale is kept: it is
identity information (head size), not pose. The rotation is the Kabsch solution (SVD of the
cross-covariance, reflection excluded), written here because it is a few lines and scipy's
``Rotation.align_vectors`` works on one pair at a time.
"""

from __future__ import annotations

import numpy as np


def rigid_transform(source: np.ndarray, target: np.ndarray,
                    weights: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Rotation ``R`` (3x3) and translation ``t`` minimising ``sum_i w_i ||R source_i + t - target_i||^2``.

    Works on one pair ``[N, 3]`` or a batch ``[B, N, 3]`` against one ``target`` ``[N, 3]``; ``weights``
    (``[N]`` or ``[B, N]``, default uniform) weight the points.
    """
    if weights is None:
        weights = np.ones(source.shape[:-1])
    weights = np.broadcast_to(weights, source.shape[:-1])[..., None] / weights.sum(axis=-1)[..., None, None]
    src_mean = (weights * source).sum(axis=-2, keepdims=True)
    tgt_mean = (weights * target).sum(axis=-2, keepdims=True)
    cross = np.swapaxes(weights * (target - tgt_mean), -1, -2) @ (source - src_mean)
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


def robust_rigid_align(source: np.ndarray, target: np.ndarray, iterations: int = 4) -> np.ndarray:
    """Rigid alignment that ignores the parts that moved non-rigidly (an expression against its neutral).

    Iteratively reweighted: after a plain fit each point gets the Cauchy weight ``1 / (1 + (d / s)^2)``
    of its residual ``d`` (``s`` = the median residual), so a localised deformation (an AU) does not pull
    the rigid fit, and the offset it leaves is the deformation itself rather than deformation minus a
    spurious rigid part.
    """
    weights = None
    aligned = source
    for _ in range(iterations):
        rotation, translation = rigid_transform(source, target, weights)
        aligned = source @ np.swapaxes(rotation, -1, -2) + translation[..., None, :]
        distance = np.linalg.norm(aligned - target, axis=-1)
        scale = np.median(distance, axis=-1, keepdims=True) + 1e-12
        weights = 1.0 / (1.0 + (distance / scale) ** 2)
    return aligned


def generalised_procrustes(shapes: np.ndarray, iterations: int = 5) -> np.ndarray:
    """Align a stack ``[B, N, 3]`` rigidly to its own mean (iterated); returns the aligned stack.

    The first shape fixes the orientation of the frame the mean lives in.
    """
    aligned = rigid_align(shapes, shapes[0])
    for _ in range(iterations):
        mean = aligned.mean(axis=0)
        aligned = rigid_align(aligned, mean)
    return aligned
