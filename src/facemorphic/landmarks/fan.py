"""face_alignment backend: the paper's FAN landmark network with the S3FD face detector, offline only.

``TWO_HALF_D`` ("2.5D", the default) runs 3DFAN-4 and gives the same x, y as ``THREE_D`` without the
depth network, which orthographic 3DMM fitting does not need; ``THREE_D`` ("3D") adds the depth network's
z (pixel units, relative); ``TWO_D`` ("2D") runs the contour-following 2DFAN-4.

Weights are never downloaded. They must already be in torch's hub cache, ``$TORCH_HOME/hub/checkpoints``
(default ``~/.cache/torch/hub/checkpoints``), under the file names of the package's own URLs; when any
is missing, :func:`require_fan_weights` stops with a message that lists them and where to put them.

Why the landmark network is driven here rather than through ``FaceAlignment.get_landmarks_from_batch``:
that method batches only the detector and then runs FAN frame by frame. :meth:`FanBackend.fit` crops
every frame's face with the package's own ``crop`` and centre/scale rule, stacks the crops and runs the
network (and the depth network) once per batch, so a GPU sees batches of up to ``batch_size`` faces.
Heatmap peaks are read by :func:`heatmap_peaks`, the package's ``get_preds_fromhm`` rule vectorised in
numpy: the package's version is numba-jitted without a cache, which costs every process several seconds
of compilation (tens of seconds on a busy two-core machine) for a loop over 68 points. The mapping back
to image pixels is the package's ``transform_np`` inverse written out in floating point, because the
package truncates the result to whole pixels.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from urllib.parse import urlparse

import numpy as np

from ..errors import FacemorphicError
from .backends import N_LANDMARKS, LandmarkBackend

log = logging.getLogger(__name__)

LANDMARK_TYPES = ("2D", "2.5D", "3D")
#: FAN heatmaps are 64x64 over the 256x256 crop; the crop spans 200 * scale image pixels.
HEATMAP_RESOLUTION = 64
CROP_SCALE_PX = 200.0


def checkpoint_dir() -> Path:
    """torch's hub checkpoint folder, ``$TORCH_HOME/hub/checkpoints`` (where face_alignment caches)."""
    import torch.hub

    return Path(torch.hub.get_dir()) / "checkpoints"


def fan_weight_urls(landmarks_type: str = "2.5D") -> list[str]:
    """The URLs (as the installed face_alignment package names them) of every file a run needs."""
    from face_alignment.api import models_urls
    from face_alignment.detection.sfd.sfd_detector import models_urls as sfd_urls

    if landmarks_type not in LANDMARK_TYPES:
        raise FacemorphicError(f"unknown face_alignment landmarks type {landmarks_type!r}; "
                               f"choose one of {', '.join(LANDMARK_TYPES)}")
    urls = [models_urls["2DFAN-4" if landmarks_type == "2D" else "3DFAN-4"]]
    if landmarks_type == "3D":
        urls.append(models_urls["depth"])
    urls.append(sfd_urls["s3fd"])
    return urls


def fan_weight_files(landmarks_type: str = "2.5D") -> list[tuple[Path, str]]:
    """``(cache path, URL)`` of every weight file; the file name is the URL's base name."""
    folder = checkpoint_dir()
    return [(folder / os.path.basename(urlparse(url).path), url) for url in fan_weight_urls(landmarks_type)]


def missing_fan_weights(landmarks_type: str = "2.5D") -> list[tuple[Path, str]]:
    """The weight files of :func:`fan_weight_files` that are not in the cache."""
    return [(path, url) for path, url in fan_weight_files(landmarks_type) if not path.is_file()]


def require_fan_weights(landmarks_type: str = "2.5D") -> None:
    """Raise :class:`FacemorphicError` listing the missing files, the folder and where to get them."""
    missing = missing_fan_weights(landmarks_type)
    if not missing:
        return
    folder = checkpoint_dir()
    lines = [f"face_alignment ({landmarks_type}) weights are missing and are never downloaded by the "
             f"pipeline; place these files in {folder} ($TORCH_HOME/hub/checkpoints; set TORCH_HOME to use "
             f"another cache):"]
    lines += [f"  {path.name}  (from {url})" for path, url in missing]
    lines.append("or run with --backend dlib, which needs no download.")
    raise FacemorphicError("\n".join(lines))


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` when torch sees a GPU, else ``cpu``; anything else is passed through."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise FacemorphicError(f"device {device!r} requested but torch sees no CUDA device")
    return device


def heatmap_peaks(heatmaps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sub-pixel peaks ``[B, C, 2]`` (x, y in heatmap cells) and peak values ``[B, C]`` of ``[B, C, H, W]``.

    The rule of face_alignment's ``get_preds_fromhm``: the arg-max cell, moved a quarter cell towards the
    higher neighbour along x and y where the cell is not on the border, then shifted by half a cell.
    """
    batch, channels, height, width = heatmaps.shape
    flat = heatmaps.reshape(batch, channels, height * width)
    index = np.argmax(flat, axis=-1)
    values = np.take_along_axis(flat, index[..., None], axis=-1)[..., 0]
    x, y = index % width, index // width
    interior = (x > 0) & (x < width - 1) & (y > 0) & (y < height - 1)
    xm, xp = np.clip(x - 1, 0, width - 1), np.clip(x + 1, 0, width - 1)
    ym, yp = np.clip(y - 1, 0, height - 1), np.clip(y + 1, 0, height - 1)
    b, c = np.meshgrid(np.arange(batch), np.arange(channels), indexing="ij")
    dx = heatmaps[b, c, y, xp] - heatmaps[b, c, y, xm]
    dy = heatmaps[b, c, yp, x] - heatmaps[b, c, ym, x]
    peaks = np.stack([x, y], axis=-1).astype(np.float32) + 0.5
    peaks += np.where(interior[..., None], np.sign(np.stack([dx, dy], axis=-1)) * 0.25, 0).astype(np.float32)
    return peaks, values


class FanBackend(LandmarkBackend):
    """FAN landmarks in S3FD boxes, batched across frames.

    ``min_score`` (mean heatmap peak, 0..1 with ``flip`` averaged) is the bar a frame's landmarks must
    clear to count as a face; a tracked frame below it is re-detected.
    """

    name = "face_alignment"

    def __init__(self, landmarks_type: str = "2.5D", device: str = "auto", flip: bool = True,
                 compile: bool = False, batch_size: int | None = None, min_score: float = 0.2,
                 detector_threshold: float = 0.5):
        require_fan_weights(landmarks_type)
        import face_alignment
        import torch

        self.device = resolve_device(device)
        self.landmarks_type = landmarks_type
        self.flip = flip
        self.min_score = float(min_score)
        self.batch_size = int(batch_size or (32 if self.device.startswith("cuda") else 4))
        self.default_batch_size = self.batch_size
        fa_type = {"2D": face_alignment.LandmarksType.TWO_D, "2.5D": face_alignment.LandmarksType.TWO_HALF_D,
                   "3D": face_alignment.LandmarksType.THREE_D}[landmarks_type]
        sfd_path = [path for path, url in fan_weight_files(landmarks_type) if "s3fd" in path.name][0]
        self._torch = torch
        self.fa = face_alignment.FaceAlignment(
            fa_type, device=self.device, flip_input=flip, face_detector="sfd",
            face_detector_kwargs={"path_to_detector": str(sfd_path), "filter_threshold": detector_threshold},
            compile=compile, max_batch_size=self.batch_size)
        self.reference_scale = float(self.fa.face_detector.reference_scale)
        log.info("face_alignment %s on %s, batch %d, flip %s, compile %s", landmarks_type, self.device,
                 self.batch_size, flip, compile)

    def detect(self, images):
        torch = self._torch
        results = []
        for start in range(0, len(images), self.batch_size):
            chunk = np.stack(images[start:start + self.batch_size]).transpose(0, 3, 1, 2)
            tensor = torch.from_numpy(np.ascontiguousarray(chunk)).to(self.device, dtype=torch.float32)
            for boxes in self.fa.face_detector.detect_from_batch(tensor):
                boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 5)
                results.append(boxes)
        return results

    def track(self, images, previous_points, previous_boxes):
        """The box of the previous landmarks, used like a detector box (FAN's crop is twice the face)."""
        from .backends import box_from_points

        return box_from_points(previous_points).astype(np.float64), np.full(len(images), np.nan)

    def _centre_scale(self, box: np.ndarray) -> tuple[np.ndarray, float]:
        """The package's rule (``get_landmarks_from_image``): box centre raised by 0.12 h, scale (w+h)/ref."""
        from face_alignment.utils import CENTER_Y_OFFSET

        width, height = box[2] - box[0], box[3] - box[1]
        centre = np.array([box[2] - width / 2.0, box[3] - height / 2.0 - height * CENTER_Y_OFFSET])
        return centre, (width + height) / self.reference_scale

    def fit(self, images, boxes):
        from face_alignment.utils import crop, draw_gaussian, flip

        torch = self._torch
        count = len(images)
        points = np.zeros((count, N_LANDMARKS, 3), dtype=np.float32)
        scores = np.zeros(count, dtype=np.float32)
        for start in range(0, count, self.batch_size):
            stop = min(count, start + self.batch_size)
            centres, scales, crops = [], [], []
            for image, box in zip(images[start:stop], boxes[start:stop]):
                centre, scale = self._centre_scale(np.asarray(box[:4], dtype=np.float64))
                centres.append(centre)
                scales.append(scale)
                crops.append(crop(image, centre, scale).transpose(2, 0, 1))
            centres_arr = np.array(centres)
            spans = CROP_SCALE_PX * np.array(scales)
            inputs = torch.from_numpy(np.stack(crops).astype(np.float32) / 255.0).to(self.device,
                                                                                    dtype=self.fa.dtype)
            with torch.no_grad():
                heatmaps = self._heatmaps(inputs, flip)
            hm = heatmaps.to(device="cpu", dtype=torch.float32).numpy()
            peaks, peak_values = heatmap_peaks(hm)
            factor = (spans / HEATMAP_RESOLUTION)[:, None]
            points[start:stop, :, 0] = peaks[..., 0] * factor + (centres_arr[:, 0] - spans / 2)[:, None]
            points[start:stop, :, 1] = peaks[..., 1] * factor + (centres_arr[:, 1] - spans / 2)[:, None]
            scores[start:stop] = peak_values.mean(axis=1) / (2.0 if self.flip else 1.0)
            if self.landmarks_type == "3D":
                crop_points = peaks * 4  # heatmap -> 256-pixel crop coordinates
                gauss = np.zeros((stop - start, N_LANDMARKS, 256, 256), dtype=np.float32)
                for i in range(stop - start):
                    for j in range(N_LANDMARKS):
                        if crop_points[i, j, 0] > 0 and crop_points[i, j, 1] > 0:
                            gauss[i, j] = draw_gaussian(gauss[i, j], crop_points[i, j], 2)
                depth_input = torch.cat(
                    [inputs, torch.from_numpy(gauss).to(self.device, dtype=self.fa.dtype)], 1)
                with torch.no_grad():
                    depth = self.fa.depth_prediciton_net(depth_input)
                depth = depth.to(device="cpu", dtype=torch.float32).numpy().reshape(-1, N_LANDMARKS)
                points[start:stop, :, 2] = depth * (spans / 256.0)[:, None]
        return points, scores

    def _heatmaps(self, inputs, flip):
        out = self.fa.face_alignment_net(inputs)
        if isinstance(out, list):
            out = out[-1]
        out = out.detach()
        if self.flip:
            flipped = self.fa.face_alignment_net(flip(inputs))
            if isinstance(flipped, list):
                flipped = flipped[-1]
            out = out + flip(flipped.detach(), is_label=True)
        return out

    def accept(self, scores):
        return np.asarray(scores) >= self.min_score
