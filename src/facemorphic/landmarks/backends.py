"""The interface every image-based landmark backend implements, face choice, and backend selection.

A backend does three things on batches of RGB uint8 frames, so that :mod:`facemorphic.landmarks.tracking`
can run any of them video-aware (detect on the first frame and whenever tracking fails, otherwise crop
around the previous face) and batch the landmark network across frames:

* :meth:`LandmarkBackend.detect`: full-frame face detection, boxes ``[n, 5]`` (x1, y1, x2, y2, score);
* :meth:`LandmarkBackend.track`: a face box for each frame from the previous frame's result, or NaN where
  the face is lost;
* :meth:`LandmarkBackend.fit`: 68 iBUG points ``[B, 68, 3]`` in pixels (z = 0 for 2D backends) inside given
  boxes, with a per-frame score where the backend has one.

Boxes are in each backend's own detector convention (the landmark networks were trained on crops made from
their own detector's boxes); the boxes the stage writes are the tight boxes of the landmarks instead, the
same for every backend.
"""

from __future__ import annotations

import logging
from typing import Sequence

import numpy as np

from ..errors import FacemorphicError

log = logging.getLogger(__name__)

N_LANDMARKS = 68
#: Backend names accepted by :func:`make_backend` (``truth`` is not image-based; see ``landmarks.truth``).
IMAGE_BACKENDS = ("face_alignment", "dlib")
BACKENDS = ("auto", "face_alignment", "dlib", "truth")


class LandmarkBackend:
    """Base class of the image-based backends; see the module docstring for the contract."""

    name = "base"
    #: ``2D``, ``2.5D`` or ``3D``: whether the z column carries depth.
    landmarks_type = "2D"
    #: frames per landmark-network batch that suits this backend (tracking lanes).
    default_batch_size = 1

    def detect(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        raise NotImplementedError

    def track(self, images: Sequence[np.ndarray], previous_points: np.ndarray,
              previous_boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Boxes ``[B, 4]`` for this frame from the previous frame's points/boxes; NaN rows where lost.

        Also returns box scores ``[B]`` (NaN where the box carries no detector score).
        """
        raise NotImplementedError

    def fit(self, images: Sequence[np.ndarray], boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Points ``[B, 68, 3]`` float32 in pixels and scores ``[B]`` (or None: use the box scores)."""
        raise NotImplementedError

    def accept(self, scores: np.ndarray) -> np.ndarray:
        """Which fitted frames hold a face worth keeping (bool ``[B]``)."""
        return np.ones(len(scores), dtype=bool)


def box_from_points(points: np.ndarray) -> np.ndarray:
    """Tight box ``[..., 4]`` (x1, y1, x2, y2) of landmarks ``[..., 68, >=2]``; NaN in, NaN out."""
    xy = points[..., :2]
    return np.concatenate([xy.min(axis=-2), xy.max(axis=-2)], axis=-1)


def choose_face(candidates: np.ndarray, reference_box: np.ndarray | None) -> np.ndarray | None:
    """Pick one face among detections ``[n, 5]``: the one nearest the reference box, else the largest.

    "Nearest" is the distance between box centres; the reference is the recording's last valid face, so
    a second person walking through the frame does not steal the track. Returns a row ``[5]`` or None.
    """
    if len(candidates) == 0:
        return None
    candidates = np.asarray(candidates, dtype=np.float64)
    if reference_box is not None and np.all(np.isfinite(reference_box)):
        centres = (candidates[:, :2] + candidates[:, 2:4]) / 2
        ref_centre = (reference_box[:2] + reference_box[2:4]) / 2
        return candidates[np.argmin(np.linalg.norm(centres - ref_centre, axis=1))]
    areas = (candidates[:, 2] - candidates[:, 0]) * (candidates[:, 3] - candidates[:, 1])
    return candidates[np.argmax(areas)]


def make_backend(name: str, *, device: str = "auto", landmarks_type: str = "2.5D", flip: bool = True,
                 compile: bool = False, batch_size: int | None = None,
                 min_score: float | None = None) -> LandmarkBackend:
    """Build an image-based backend by name (``auto``, ``face_alignment`` or ``dlib``).

    ``auto`` takes face_alignment when all its weight files are in the torch hub cache and dlib otherwise,
    and logs which and why. Nothing is ever downloaded.
    """
    if name == "auto":
        from .fan import missing_fan_weights

        missing = missing_fan_weights(landmarks_type)
        if missing:
            log.warning("backend auto: face_alignment weights missing (%s); using dlib",
                        ", ".join(str(path) for path, _ in missing))
            name = "dlib"
        else:
            log.info("backend auto: face_alignment weights found; using face_alignment")
            name = "face_alignment"
    if name == "dlib":
        from .dlib_backend import DlibBackend

        return DlibBackend() if min_score is None else DlibBackend(min_score=min_score)
    if name == "face_alignment":
        from .fan import FanBackend

        kwargs = {} if min_score is None else {"min_score": min_score}
        return FanBackend(landmarks_type=landmarks_type, device=device, flip=flip, compile=compile,
                          batch_size=batch_size, **kwargs)
    if name == "truth":
        raise FacemorphicError("backend 'truth' reads synthetic truth files, not images: "
                               "use facemorphic.landmarks.truth (CLI: --backend truth --truth-root DIR)")
    raise FacemorphicError(f"unknown landmark backend {name!r}; choose one of {', '.join(BACKENDS)}")
