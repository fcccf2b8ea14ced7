"""A small z-buffer rasteriser (numba), pinhole cameras, and the per-user appearance of the scene.

Why hand-written: the generator has to render a few hundred thousand frames (RGB at 30 fps and the event
sensor's view at several hundred Hz) on a laptop, with no GPU and no OpenGL context; the mesh is a few
thousand small triangles and only the face region changes, so a numba scan-line loop over each
triangle's bounding box, restricted to a crop window, is both simple and fast enough. It interpolates
texture coordinates and a Gouraud (per-vertex Lambert) shade across each triangle, samples the texture
bilinearly and keeps the nearest surface per pixel; back faces are culled. :class:`MeshView` keeps one
camera's background and buffers for the thousands of renders of a recording, each of a box of its window.

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
    Depth, texture coordinates and shade are affine in (x, y) over a triangle, so each gets its plane
    once per triangle; each row of a triangle's bounding box visits only the span of columns inside all
    three edges, found with one multiplication per edge. The mesh's triangles cover a few pixels each,
    so this per-triangle and per-row work is most of the cost.
    Compiled without ``fastmath`` (about 15% slower) so that a seed gives the same bytes wherever it runs.
    """
    h, w, nc = image.shape
    u_max, v_max = texture.shape[1] - 1.001, texture.shape[0] - 1.001
    for f in range(faces.shape[0]):
        i0, i1, i2 = faces[f, 0], faces[f, 1], faces[f, 2]
        ax, ay = px[i0, 0] - x0, px[i0, 1] - y0
        bx, by = px[i1, 0] - x0, px[i1, 1] - y0
        cx, cy = px[i2, 0] - x0, px[i2, 1] - y0
        xmin = max(int(np.ceil(min(ax, bx, cx))), 0)
        xmax = min(int(np.floor(max(ax, bx, cx))), w - 1)
        ymin = max(int(np.ceil(min(ay, by, cy))), 0)
        ymax = min(int(np.floor(max(ay, by, cy))), h - 1)
        if xmin > xmax or ymin > ymax:
            continue
        area = (bx - ax) * (cy - ay) - (by - ay) * (cx - ax)
        if area >= 0.0:  # counter-clockwise in the world is clockwise in y-down pixels: back faces cull
            continue
        inv = 1.0 / area
        # barycentric weights are affine in (x, y): w_k = ka * x + kb * y + kc
        w0a, w0b, w0c = (by - cy) * inv, (cx - bx) * inv, (bx * cy - by * cx) * inv
        w1a, w1b, w1c = (cy - ay) * inv, (ax - cx) * inv, (cx * ay - cy * ax) * inv
        w2a, w2b, w2c = -w0a - w1a, -w0b - w1b, 1.0 - w0c - w1c
        # and so is every attribute q = w0 q0 + w1 q1 + (1 - w0 - w1) q2 = qa * x + qb * y + qc
        z0, z1, z2 = depth[i0] - depth[i2], depth[i1] - depth[i2], depth[i2]
        za, zb, zc = w0a * z0 + w1a * z1, w0b * z0 + w1b * z1, w0c * z0 + w1c * z1 + z2
        u0, u1, u2 = uv[i0, 0] - uv[i2, 0], uv[i1, 0] - uv[i2, 0], uv[i2, 0]
        ua, ub, uc = w0a * u0 + w1a * u1, w0b * u0 + w1b * u1, w0c * u0 + w1c * u1 + u2
        v0, v1, v2 = uv[i0, 1] - uv[i2, 1], uv[i1, 1] - uv[i2, 1], uv[i2, 1]
        va, vb, vc = w0a * v0 + w1a * v1, w0b * v0 + w1b * v1, w0c * v0 + w1c * v1 + v2
        s0, s1, s2 = shade[i0] - shade[i2], shade[i1] - shade[i2], shade[i2]
        sa, sb, sc = w0a * s0 + w1a * s1, w0b * s0 + w1b * s1, w0c * s0 + w1c * s1 + s2
        # edge k keeps x >= -(kb y + kc) / ka when ka > 0, x <= that when ka < 0, all or nothing when ka = 0
        q0 = -1.0 / w0a if abs(w0a) > 1e-12 else 0.0
        q1 = -1.0 / w1a if abs(w1a) > 1e-12 else 0.0
        q2 = -1.0 / w2a if abs(w2a) > 1e-12 else 0.0
        for y in range(ymin, ymax + 1):
            lo = float(xmin)
            hi = float(xmax)
            r = w0b * y + w0c + 1e-9
            if w0a > 1e-12:
                lo = max(lo, r * q0)
            elif w0a < -1e-12:
                hi = min(hi, r * q0)
            elif r < 0.0:
                continue
            r = w1b * y + w1c + 1e-9
            if w1a > 1e-12:
                lo = max(lo, r * q1)
            elif w1a < -1e-12:
                hi = min(hi, r * q1)
            elif r < 0.0:
                continue
            r = w2b * y + w2c + 1e-9
            if w2a > 1e-12:
                lo = max(lo, r * q2)
            elif w2a < -1e-12:
                hi = min(hi, r * q2)
            elif r < 0.0:
                continue
            if lo > hi:
                continue
            z_row, u_row, v_row, s_row = zb * y + zc, ub * y + uc, vb * y + vc, sb * y + sc
            for x in range(int(np.ceil(lo)), int(np.floor(hi)) + 1):
                z = za * x + z_row
                if z >= zbuf[y, x]:
                    continue
                zbuf[y, x] = z
                u = min(max(ua * x + u_row, 0.0), u_max)
                v = min(max(va * x + v_row, 0.0), v_max)
                s = sa * x + s_row
                iu, iv = int(u), int(v)
                fu, fv = u - iu, v - iv
                k00, k01, k10, k11 = (1 - fu) * (1 - fv), fu * (1 - fv), (1 - fu) * fv, fu * fv
                for c in range(nc):
                    val = (k00 * texture[iv, iu, c] + k01 * texture[iv, iu + 1, c]
                           + k10 * texture[iv + 1, iu, c] + k11 * texture[iv + 1, iu + 1, c])
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


@nb.njit(cache=True, nogil=True)
def vertex_shade(vertices, faces, light_dir, ambient, diffuse):
    """Per-vertex Lambert shade multiplier [N]: ambient + diffuse * max(0, n . l) with area-weighted normals.

    Normals and shade in one compiled call per render, without numpy's temporaries for the product
    and the clip.
    """
    normals = vertex_normals(vertices, faces)
    shade = np.empty(normals.shape[0])
    for i in range(normals.shape[0]):
        cosine = normals[i, 0] * light_dir[0] + normals[i, 1] * light_dir[1] + normals[i, 2] * light_dir[2]
        shade[i] = ambient + diffuse * max(cosine, 0.0)
    return shade


@nb.njit(cache=True, nogil=True)
def _project(points, rotation, position, focal, cx, cy, px, depth):
    """Pinhole projection of ``points`` [M, 3] into ``px`` [M, 2] and ``depth`` [M].

    A loop instead of ``(points - position) @ rotation.T`` and the division: numpy's matmul over a
    3-vector axis and the temporaries make that three to four times slower, for every block of renders.
    """
    for i in range(points.shape[0]):
        d0 = points[i, 0] - position[0]
        d1 = points[i, 1] - position[1]
        d2 = points[i, 2] - position[2]
        x = rotation[0, 0] * d0 + rotation[0, 1] * d1 + rotation[0, 2] * d2
        y = rotation[1, 0] * d0 + rotation[1, 1] * d1 + rotation[1, 2] * d2
        z = rotation[2, 0] * d0 + rotation[2, 1] * d1 + rotation[2, 2] * d2
        px[i, 0] = focal * x / z + cx
        px[i, 1] = focal * y / z + cy
        depth[i] = z


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
        points = np.ascontiguousarray(points, dtype=np.float64)
        flat = points.reshape(-1, 3)
        px, depth = np.empty((len(flat), 2)), np.empty(len(flat))
        _project(flat, self.rotation, self.position, self.focal, self.cx, self.cy, px, depth)
        return px.reshape(points.shape[:-1] + (2,)), depth.reshape(points.shape[:-1])


def render(camera: Camera, vertices, faces, uv, shade, texture, background, window=None) -> np.ndarray:
    """Render a mesh over a background (both float32 [H, W, C]); ``window`` = (x0, y0, w, h) crops."""
    x0, y0, w, h = window if window is not None else (0, 0, camera.width, camera.height)
    image = np.array(background[y0:y0 + h, x0:x0 + w], dtype=np.float32, copy=True)
    zbuf = np.full((h, w), np.inf)
    px, z = camera.project(vertices)
    rasterize(px, z, np.asarray(shade, dtype=np.float64), uv, faces, texture, image, zbuf, x0, y0)
    return image


class MeshView:
    """One camera's renders of a mesh over a static background, into buffers reused from render to render.

    ``window`` (x0, y0, w, h) is the part of the camera image the mesh can reach; :meth:`draw` renders a
    box inside it and returns that box of the image (a view, valid until the next draw).
    """

    def __init__(self, camera: Camera, faces, uv, texture, background, window):
        self.camera, self.faces, self.uv, self.texture = camera, faces, uv, texture
        self.x0, self.y0, w, h = window
        self.background = np.ascontiguousarray(background[self.y0:self.y0 + h, self.x0:self.x0 + w])
        self.image = np.empty_like(self.background)
        self.zbuf = np.empty((h, w), np.float32)  # depths a few micrometres apart are the same surface

    def draw(self, px: np.ndarray, depth: np.ndarray, shade: np.ndarray, box) -> np.ndarray:
        """Render the mesh (projected: ``px`` [N, 2], ``depth`` [N]) inside ``box`` (x0, y0, w, h, camera pixels)."""
        bx, by, w, h = box[0] - self.x0, box[1] - self.y0, box[2], box[3]
        image, zbuf = self.image[by:by + h, bx:bx + w], self.zbuf[by:by + h, bx:bx + w]
        image[:] = self.background[by:by + h, bx:bx + w]
        zbuf[:] = np.inf
        rasterize(px, depth, shade, self.uv, self.faces, self.texture, image, zbuf, box[0], box[1])
        return image
