"""A small z-buffer rasteriser (numba), pinhole cameras, and the per-user appearance of the scene.

Why hand-written: the generator has to render a few hundred thousand frames (RGB at 30 fps and the event
sensor's view at several hundred Hz) on a laptop, with no GPU and no OpenGL context; the mesh is a few
thousand small triangles and only the face region changes, so a numba scan-line loop over each
triangle's bounding box, restricted to a crop window, is both simple and fast enough. It interpolates
texture coordinates and a Gouraud (per-vertex Lambert) shade across each triangle, samples the texture
bilinearly and keeps the nearest surface per pixel; back faces are culled.

Pixel convention: pixel (col, row) has its centre at image coordinates (col, row), the convention of
dlib and of the truth landmarks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba as nb
import numpy as np


@nb.njit(cache=True, nogil=True)
def rasterize(px, depth, shade, uv, faces, texture, image, zbuf, x0, y0):
    """Draw textured, shaded triangles into ``image`` [h, w, C] (a window at (x0, y0) of the full image).

    ``px`` [N, 2] projected vertex positions in full-image pixels, ``depth`` [N] distance along the
    optical axis, ``shade`` [N] per-vertex multiplier, ``uv`` [N, 2] texture pixel coordinates,
    ``texture`` [th, tw, C] float32, ``zbuf`` [h, w] (initialised to +inf by the caller).
    Each row of a triangle's bounding box visits only the span of columns inside all three edges.
    Compiled without ``fastmath`` (about 15% slower) so that a seed gives the same bytes wherever it runs.
    """
    h, w, nc = image.shape
    th, tw = texture.shape[0], texture.shape[1]
    for f in range(faces.shape[0]):
        i0, i1, i2 = faces[f, 0], faces[f, 1], faces[f, 2]
        ax, ay = px[i0, 0] - x0, px[i0, 1] - y0
        bx, by = px[i1, 0] - x0, px[i1, 1] - y0
        cx, cy = px[i2, 0] - x0, px[i2, 1] - y0
        area = (bx - ax) * (cy - ay) - (by - ay) * (cx - ax)
        if area >= 0.0:  # counter-clockwise in the world is clockwise in y-down pixels: back faces cull
            continue
        xmin = max(int(np.ceil(min(ax, bx, cx))), 0)
        xmax = min(int(np.floor(max(ax, bx, cx))), w - 1)
        ymin = max(int(np.ceil(min(ay, by, cy))), 0)
        ymax = min(int(np.floor(max(ay, by, cy))), h - 1)
        if xmin > xmax or ymin > ymax:
            continue
        inv = 1.0 / area
        # barycentric weights are affine in (x, y): w_k = ka * x + kb * y + kc
        w0a, w0b, w0c = (by - cy) * inv, (cx - bx) * inv, (bx * cy - by * cx) * inv
        w1a, w1b, w1c = (cy - ay) * inv, (ax - cx) * inv, (cx * ay - cy * ax) * inv
        w2a, w2b, w2c = -w0a - w1a, -w0b - w1b, 1.0 - w0c - w1c
        z0, z1, z2 = depth[i0], depth[i1], depth[i2]
        u0, u1, u2 = uv[i0, 0], uv[i1, 0], uv[i2, 0]
        v0, v1, v2 = uv[i0, 1], uv[i1, 1], uv[i2, 1]
        s0, s1, s2 = shade[i0], shade[i1], shade[i2]
        for y in range(ymin, ymax + 1):
            lo = float(xmin)
            hi = float(xmax)
            empty = False
            for ka, kb, kc in ((w0a, w0b, w0c), (w1a, w1b, w1c), (w2a, w2b, w2c)):
                rest = kb * y + kc + 1e-9
                if ka > 1e-12:
                    lo = max(lo, -rest / ka)
                elif ka < -1e-12:
                    hi = min(hi, -rest / ka)
                elif rest < 0.0:
                    empty = True
            if empty or lo > hi:
                continue
            for x in range(int(np.ceil(lo)), int(np.floor(hi)) + 1):
                w0 = max(w0a * x + w0b * y + w0c, 0.0)
                w1 = max(w1a * x + w1b * y + w1c, 0.0)
                w2 = max(1.0 - w0 - w1, 0.0)
                z = w0 * z0 + w1 * z1 + w2 * z2
                if z >= zbuf[y, x]:
                    continue
                zbuf[y, x] = z
                u = min(max(w0 * u0 + w1 * u1 + w2 * u2, 0.0), tw - 1.001)
                v = min(max(w0 * v0 + w1 * v1 + w2 * v2, 0.0), th - 1.001)
                s = w0 * s0 + w1 * s1 + w2 * s2
                iu, iv = int(u), int(v)
                fu, fv = u - iu, v - iv
                for c in range(nc):
                    val = ((1 - fu) * (1 - fv) * texture[iv, iu, c] + fu * (1 - fv) * texture[iv, iu + 1, c]
                           + (1 - fu) * fv * texture[iv + 1, iu, c] + fu * fv * texture[iv + 1, iu + 1, c])
                    image[y, x, c] = min(val * s, 1.0)


@nb.njit(cache=True, nogil=True)
def vertex_normals(vertices, faces):
    """Area-weighted unit vertex normals [N, 3] of a triangle mesh."""
    normals = np.zeros_like(vertices)
    for f in range(faces.shape[0]):
        a, b, c = faces[f, 0], faces[f, 1], faces[f, 2]
        e1x, e1y, e1z = (vertices[b, 0] - vertices[a, 0], vertices[b, 1] - vertices[a, 1],
                         vertices[b, 2] - vertices[a, 2])
        e2x, e2y, e2z = (vertices[c, 0] - vertices[a, 0], vertices[c, 1] - vertices[a, 1],
                         vertices[c, 2] - vertices[a, 2])
        n0 = e1y * e2z - e1z * e2y
        n1 = e1z * e2x - e1x * e2z
        n2 = e1x * e2y - e1y * e2x
        for k in (a, b, c):
            normals[k, 0] += n0
            normals[k, 1] += n1
            normals[k, 2] += n2
    for i in range(normals.shape[0]):
        norm = np.sqrt(normals[i, 0] ** 2 + normals[i, 1] ** 2 + normals[i, 2] ** 2)
        if norm > 0:
            normals[i, 0] /= norm
            normals[i, 1] /= norm
            normals[i, 2] /= norm
    return normals


@dataclass(frozen=True)
class Camera:
    """A pinhole camera: world point X -> R (X - position) -> (f x / z + cx, f y / z + cy), y down."""

    focal: float
    cx: float
    cy: float
    rotation: np.ndarray  # [3, 3] world -> camera (rows: right, down, forward)
    position: np.ndarray  # [3]
    width: int
    height: int

    @classmethod
    def look_at(cls, position, target, focal, width, height, roll_deg=0.0, principal=None) -> "Camera":
        position = np.asarray(position, dtype=np.float64)
        forward = np.asarray(target, dtype=np.float64) - position
        forward /= np.linalg.norm(forward)
        right = np.cross(forward, [0.0, 1.0, 0.0])
        right /= np.linalg.norm(right)
        down = np.cross(forward, right)
        r = np.deg2rad(roll_deg)
        right, down = np.cos(r) * right + np.sin(r) * down, -np.sin(r) * right + np.cos(r) * down
        cx, cy = principal if principal is not None else ((width - 1) / 2.0, (height - 1) / 2.0)
        return cls(float(focal), float(cx), float(cy), np.stack([right, down, forward]), position, width, height)

    def project(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pixel coordinates [..., 2] and depth [...] of world points [..., 3]."""
        cam = (np.asarray(points, dtype=np.float64) - self.position) @ self.rotation.T
        z = cam[..., 2]
        px = np.stack([self.focal * cam[..., 0] / z + self.cx, self.focal * cam[..., 1] / z + self.cy], -1)
        return px, z


def lambert_shade(normals: np.ndarray, light_dir: np.ndarray, ambient: float, diffuse: float) -> np.ndarray:
    """Per-vertex shade multiplier: ambient + diffuse * max(0, n . l)."""
    return ambient + diffuse * np.clip(normals @ light_dir, 0.0, None)


def render(camera: Camera, vertices, faces, uv, shade, texture, background, window=None) -> np.ndarray:
    """Render a mesh over a background (both float32 [H, W, C]); ``window`` = (x0, y0, w, h) crops."""
    x0, y0, w, h = window if window is not None else (0, 0, camera.width, camera.height)
    image = np.array(background[y0:y0 + h, x0:x0 + w], dtype=np.float32, copy=True)
    zbuf = np.full((h, w), np.inf)
    px, z = camera.project(vertices)
    rasterize(px, z, np.asarray(shade, dtype=np.float64), uv, faces, texture, image, zbuf, x0, y0)
    return image
