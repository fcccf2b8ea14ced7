"""The Figure-3 style video: event frame | 3DMM mesh of the predicted coefficients | RGB frame.

The mesh is drawn frontally (orthographic, +y up, +z towards the viewer) with the project's z-buffer
rasteriser (:func:`facemorphic.synthetic.render.rasterize`), its texture a one-row colour map indexed by
each vertex's distance from the neutral face (the template), so the colours show where the predicted
expression moves the face, as in the paper. One colour scale (the largest displacement of the recording)
serves every frame, so colours compare across time. Panels are resized to a common height; a strip of 24
bars under them shows the frame's AU probabilities, the decided AU's bar in red.
"""

from __future__ import annotations

from typing import Iterable, Iterator

import numpy as np
import torch
import torch.nn.functional as F

from ..morphable.model import MorphableModel
from ..synthetic.render import rasterize, vertex_normals

BAR_STRIP = 48


def resize_panel(image: np.ndarray, height: int) -> np.ndarray:
    """uint8 ``[H, W, 3]`` -> ``[height, W', 3]`` keeping the aspect ratio (even width, for H.264)."""
    width = max(2, int(round(image.shape[1] * height / image.shape[0])) // 2 * 2)
    tensor = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float()
    resized = F.interpolate(tensor, size=(height, width), mode="bilinear", antialias=True, align_corners=False)
    return resized[0].permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8).numpy()


class MeshRenderer:
    """Frontal renders of ``model.shape(alpha_au=alpha)``, coloured by distance from the template."""

    def __init__(self, model: MorphableModel, size: int, max_distance: float):
        from matplotlib import colormaps

        self.model, self.size = model, size
        self.max_distance = max(float(max_distance), 1e-12)
        template = model.template
        centre = (template.max(axis=0) + template.min(axis=0)) / 2
        extent = float(np.max(template.max(axis=0)[:2] - template.min(axis=0)[:2]))
        self.centre, self.scale = centre, 0.85 * (size - 1) / max(extent, 1e-12)
        faces = np.ascontiguousarray(model.faces, dtype=np.int64)
        # the rasteriser culls triangles that are clockwise on screen: face the mesh towards the viewer
        px = self._project(template)
        a, b, c = px[faces[:, 0]], px[faces[:, 1]], px[faces[:, 2]]
        signed = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])
        self.faces = faces if np.sum(signed < 0) >= np.sum(signed > 0) else np.ascontiguousarray(faces[:, ::-1])
        colours = colormaps["viridis"](np.linspace(0, 1, 256))[:, :3].astype(np.float32)
        self.texture = np.ascontiguousarray(np.stack([colours, colours]))  # [2, 256, 3]

    def _project(self, vertices: np.ndarray) -> np.ndarray:
        centred = vertices - self.centre
        half = (self.size - 1) / 2
        return np.stack([half + self.scale * centred[:, 0], half - self.scale * centred[:, 1]], axis=1)

    def render(self, alpha: np.ndarray) -> np.ndarray:
        vertices = self.model.shape(alpha_au=alpha)
        distance = np.linalg.norm(vertices - self.model.template, axis=1)
        uv = np.stack([np.clip(distance / self.max_distance, 0, 1) * 254.99, np.zeros_like(distance)], axis=1)
        normals = vertex_normals(vertices, self.faces)
        shade = 0.35 + 0.65 * np.abs(normals[:, 2])
        image = np.full((self.size, self.size, 3), 0.1, dtype=np.float32)
        zbuf = np.full((self.size, self.size), np.inf)
        rasterize(self._project(vertices), -(vertices[:, 2] - self.centre[2]), shade.astype(np.float64), uv,
                  self.faces, self.texture, image, zbuf, 0, 0)
        return (image * 255).round().astype(np.uint8)


def max_displacement(model: MorphableModel, alpha: np.ndarray) -> float:
    """Largest vertex distance from the template over all frames (the colour scale)."""
    per_vertex = model.au_basis.reshape(model.n_vertices, 3, -1)
    return max((float(np.linalg.norm(per_vertex @ a, axis=1).max()) for a in alpha), default=0.0)


def probability_strip(probabilities: np.ndarray, decided: int, width: int) -> np.ndarray:
    """``[BAR_STRIP, width, 3]``: one bar per AU, height by probability, the decided AU in red."""
    strip = np.full((BAR_STRIP, width, 3), 16, np.uint8)
    n = len(probabilities)
    for k, p in enumerate(probabilities):
        left, right = k * width // n, (k + 1) * width // n - 1
        top = BAR_STRIP - 1 - int(round(float(p) * (BAR_STRIP - 2)))
        strip[top:, left:right] = (220, 60, 60) if k == decided else (200, 200, 200)
    return strip


def figure_frames(event_images: Iterable[np.ndarray], alpha: np.ndarray, probabilities: np.ndarray,
                  decided: int, height: int, model: MorphableModel | None = None,
                  rgb_images: Iterable[np.ndarray] | None = None) -> Iterator[np.ndarray]:
    """One video frame per event frame (uint8 ``[H, W, 3]`` each, in frame order)."""
    renderer = MeshRenderer(model, height, max_displacement(model, alpha)) if model is not None else None
    rgb_iter = iter(rgb_images) if rgb_images is not None else None
    for k, event_image in enumerate(event_images):
        panels = [resize_panel(event_image, height)]
        if renderer is not None:
            panels.append(renderer.render(alpha[k]))
        if rgb_iter is not None:
            rgb = next(rgb_iter, None)
            panels.append(resize_panel(rgb, height) if rgb is not None else np.zeros((height, height, 3), np.uint8))
        row = np.concatenate(panels, axis=1)
        yield np.concatenate([row, probability_strip(probabilities[k], decided, row.shape[1])], axis=0)
