"""The ground-truth face: a procedural mesh in FLAME-like conventions with identity modes and 24 AUs.

Why hand-made: the pipeline learns its own 3DMM (PCA identity + dictionary AU model) and must be
checked against a generator that shares none of its machinery. This module builds, without any
randomness, one fixed face model:

* **Template** - a height-field mesh over a grid in the (x, y) plane, in metres, +y up, +z towards the
  viewer, the subject's right at -x (FLAME's conventions). The grid (3.2 mm, refined to 1.6 mm around
  the eyes and the mouth) covers the head and the neck: about 6400 vertices and 12600 triangles. Its
  outline and features are placed at the 68 iBUG landmarks that dlib's 68-point predictor finds on
  ``skimage.data.astronaut()`` (measured once and kept below as constants, so generating data never
  needs dlib), scaled so that the outer eye corners
  are 92 mm apart like FLAME's template. Depth is an ellipsoidal head plus smooth bumps anchored at
  those landmarks (nose, brow ridge, eye sockets, cheeks, lips, chin) and a drop outside the face
  contour so the jaw line is a real depth edge under head rotation.
* **Texture coordinates** - every vertex maps back to the astronaut photograph by the inverse of that
  scaling, so the rendered neutral face shows the photographed face with its features exactly at the
  mesh's landmarks; deformations carry the texture with them.
* **Landmark embedding** - each of the 68 landmarks is a point inside one triangle (FLAME static
  embedding form: triangle index + barycentric coordinates), so landmarks follow every deformation.
* **Identity modes** - 12 smooth, interpretable displacement fields (face width, height, depth, nose,
  eye spacing, mouth, jaw, chin, brows, cheeks, forehead); an identity is ``alpha ~ N(0, 1)``.
* **AU fields** - one displacement field per facial AU (1 ... 45), local and following the FACS
  descriptions (brows raised / lowered, cheeks raised, lids tightened or closed, nose wrinkled, lip
  corners pulled / depressed, lips parted, jaw dropped ...). Shape = template + id_basis @ alpha_id +
  au_basis @ a(t), all linear, so the true offsets are exactly the learnable kind.
* **Head AUs 51-56** are rigid rotations of the head about a neck pivot, blended to zero down the neck
  (linear blend skinning) so the torso stays put.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numba as nb
import numpy as np

from .. import ACTION_UNITS, FACIAL_ACTION_UNITS

#: dlib 68-point landmarks (iBUG order) of ``skimage.data.astronaut()`` in photo pixels (x right, y
#: down), from ``dlib.shape_predictor(shape_predictor_68_face_landmarks.dat)`` on the HOG box.
ASTRONAUT_LANDMARKS_PX = np.array([
    [179, 104], [180, 116], [181, 127], [182, 139], [185, 150], [191, 160], [200, 168], [209, 176],
    [220, 178], [232, 177], [243, 171], [253, 163], [260, 154], [265, 143], [268, 131], [270, 120],
    [272, 108], [186, 94], [192, 88], [200, 87], [208, 89], [216, 92], [236, 93], [244, 91], [252, 91],
    [260, 92], [265, 99], [226, 102], [225, 111], [225, 119], [225, 127], [214, 131], [219, 133],
    [224, 134], [229, 133], [234, 132], [195, 101], [200, 98], [207, 98], [212, 104], [206, 104],
    [199, 104], [237, 106], [243, 100], [250, 100], [255, 105], [250, 107], [244, 107], [201, 139],
    [209, 139], [218, 139], [224, 141], [230, 140], [238, 140], [246, 141], [238, 151], [229, 155],
    [222, 156], [216, 155], [208, 150], [204, 141], [218, 143], [223, 144], [230, 143], [243, 142],
    [229, 150], [223, 151], [217, 150]], dtype=np.float64)

#: Photo pixel that becomes the template origin (between the inner eye corners, at nose-tip height).
PHOTO_ORIGIN_PX = (224.5, 127.0)
#: Metres per photo pixel: outer eye corners (iBUG 36, 45) 92 mm apart, as in FLAME's template.
METRES_PER_PX = 0.092 / float(np.linalg.norm(ASTRONAUT_LANDMARKS_PX[45] - ASTRONAUT_LANDMARKS_PX[36]))
#: Grid spacing of the template mesh in metres.
GRID_SPACING_M = 0.0032
#: The head region (hair included) as an ellipse in photo pixels: centre and semi-axes.
HEAD_ELLIPSE_PX = ((227.0, 100.0), (76.0, 90.0))
#: The neck as a rectangle in photo pixels (x0, x1, y0, y1).
NECK_RECT_PX = (190.0, 262.0, 150.0, 200.0)
#: Photo rows (y, pixels) where the head-rotation weight goes from 1 (above) to 0 (below).
NECK_BLEND_PX = (168.0, 196.0)

#: Number of identity modes.
N_IDENTITY = 12
IDENTITY_MODE_NAMES = ("face_width", "face_height", "depth", "nose_protrusion", "nose_width",
                       "eye_spacing", "mouth_width", "jaw_width", "chin_length", "brow_height",
                       "cheek_fullness", "forehead_slope")

#: Peak head rotation (degrees) at AU intensity 1 for 51/52 (yaw), 53/54 (pitch), 55/56 (roll).
HEAD_AU_DEGREES = {51: 20.0, 52: 20.0, 53: 15.0, 54: 15.0, 55: 15.0, 56: 15.0}
#: Index into ACTION_UNITS of each facial AU, in the order of FaceModel.au_basis' last axis.
FACIAL_CLASS_INDEX = np.array([ACTION_UNITS.index(au) for au in FACIAL_ACTION_UNITS])


def photo_to_template(px: np.ndarray) -> np.ndarray:
    """Photo pixel coordinates (x right, y down) -> template (x, y) in metres (y up)."""
    px = np.asarray(px, dtype=np.float64)
    return np.stack([(px[..., 0] - PHOTO_ORIGIN_PX[0]) * METRES_PER_PX,
                     -(px[..., 1] - PHOTO_ORIGIN_PX[1]) * METRES_PER_PX], axis=-1)


def template_to_photo(xy: np.ndarray) -> np.ndarray:
    """Template (x, y) in metres -> photo pixel coordinates (the texture coordinates)."""
    xy = np.asarray(xy, dtype=np.float64)
    return np.stack([xy[..., 0] / METRES_PER_PX + PHOTO_ORIGIN_PX[0],
                     -xy[..., 1] / METRES_PER_PX + PHOTO_ORIGIN_PX[1]], axis=-1)


@dataclass(frozen=True)
class FaceModel:
    """The fixed generator model; arrays are read-only float64 unless stated."""

    template: np.ndarray  # [N, 3] metres
    faces: np.ndarray  # [F, 3] int32, counter-clockwise seen from +z
    uv: np.ndarray  # [N, 2] texture coordinates in astronaut photo pixels
    lmk_face_idx: np.ndarray  # [68] uint32
    lmk_b_coords: np.ndarray  # [68, 3]
    id_basis: np.ndarray  # [N, 3, N_IDENTITY] displacement per unit identity coefficient
    au_basis: np.ndarray  # [N, 3, 18] displacement per unit AU intensity (facial AUs, ACTION_UNITS order)
    head_weight: np.ndarray  # [N] 1 on the head, 0 at the bottom of the neck
    pivot: np.ndarray  # [3] head rotation centre

    @property
    def n_vertices(self) -> int:
        return len(self.template)

    def landmarks(self, vertices: np.ndarray) -> np.ndarray:
        """The 68 landmarks of ``vertices`` ``[..., N, 3]`` through the barycentric embedding -> [..., 68, 3]."""
        tri = self.faces[self.lmk_face_idx]  # [68, 3]
        corners = vertices[..., tri, :]  # [..., 68, 3, 3]
        return np.einsum("...kjc,kj->...kc", corners, self.lmk_b_coords)

    def shape(self, identity: np.ndarray, au_facial: np.ndarray) -> np.ndarray:
        """Unposed shape(s): template + identity offsets + AU offsets; ``au_facial`` [..., 18] -> [..., N, 3]."""
        base = self.template + self.id_basis @ np.asarray(identity, dtype=np.float64)
        return base + np.einsum("ncf,...f->...nc", self.au_basis, np.asarray(au_facial, dtype=np.float64))


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def _gauss(xy: np.ndarray, centre, sigma) -> np.ndarray:
    sx, sy = (sigma, sigma) if np.isscalar(sigma) else sigma
    d = (xy[:, 0] - centre[0]) ** 2 / (2 * sx * sx) + (xy[:, 1] - centre[1]) ** 2 / (2 * sy * sy)
    return np.exp(-d)


def _polygon_distance(xy: np.ndarray, polygon: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distance of points to a closed polygon's boundary and whether each point is inside."""
    from matplotlib.path import Path as MplPath

    a = polygon
    b = np.roll(polygon, -1, axis=0)
    ab = b - a
    ap = xy[:, None, :] - a[None]
    t = np.clip((ap * ab).sum(-1) / (ab * ab).sum(-1), 0.0, 1.0)
    closest = a[None] + t[..., None] * ab[None]
    dist = np.linalg.norm(xy[:, None, :] - closest, axis=-1).min(axis=1)
    inside = MplPath(polygon).contains_points(xy)
    return dist, inside


def _in_domain_px(px: np.ndarray) -> np.ndarray:
    """Whether photo-pixel points lie in the head ellipse or the neck rectangle."""
    (cx, cy), (ax, ay) = HEAD_ELLIPSE_PX
    x0, x1, y0, y1 = NECK_RECT_PX
    in_head = ((px[..., 0] - cx) / ax) ** 2 + ((px[..., 1] - cy) / ay) ** 2 <= 1.0
    in_neck = (px[..., 0] >= x0) & (px[..., 0] <= x1) & (px[..., 1] >= y0) & (px[..., 1] <= y1)
    return in_head | in_neck


def _grid_mesh(lm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Vertices (template xy) and counter-clockwise triangles of the head-and-neck domain.

    A regular grid of spacing GRID_SPACING_M, refined to half that spacing around the eyes and the
    mouth (so that a closing eyelid or parting lips, a few millimetres, span several rows of
    vertices), Delaunay-triangulated; triangles outside the domain or bridging a concavity are dropped.
    """
    from scipy.spatial import Delaunay

    (cx, cy), (ax, ay) = HEAD_ELLIPSE_PX
    lo = photo_to_template(np.array([cx - ax - 2, NECK_RECT_PX[3] + 2]))
    hi = photo_to_template(np.array([cx + ax + 2, cy - ay - 2]))

    def grid(x0, x1, y0, y1, step):
        xs = np.arange(x0, x1 + step / 2, step)
        ys = np.arange(y0, y1 + step / 2, step)
        return np.stack(np.meshgrid(xs, ys), -1).reshape(-1, 2)

    coarse = grid(lo[0], hi[0], lo[1], hi[1], GRID_SPACING_M)
    boxes = []
    for idx in (range(36, 42), range(42, 48), range(48, 68)):
        pts = lm[list(idx)]
        margin = 0.004
        boxes.append((pts[:, 0].min() - margin, pts[:, 0].max() + margin, pts[:, 1].min() - margin,
                      pts[:, 1].max() + margin))
    keep = np.ones(len(coarse), bool)
    fine = []
    for x0, x1, y0, y1 in boxes:
        keep &= ~((coarse[:, 0] > x0) & (coarse[:, 0] < x1) & (coarse[:, 1] > y0) & (coarse[:, 1] < y1))
        fine.append(grid(x0, x1, y0, y1, GRID_SPACING_M / 2))
    points = np.concatenate([coarse[keep]] + fine)
    points = points[_in_domain_px(template_to_photo(points))]
    points = np.unique(np.round(points, 9), axis=0)
    tri = Delaunay(points).simplices
    corners = points[tri]
    centroid_in = _in_domain_px(template_to_photo(corners.mean(1)))
    longest = np.linalg.norm(corners - np.roll(corners, 1, axis=1), axis=-1).max(1)
    tri = tri[centroid_in & (longest < 1.6 * GRID_SPACING_M)]
    e1, e2 = points[tri[:, 1]] - points[tri[:, 0]], points[tri[:, 2]] - points[tri[:, 0]]
    clockwise = e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0] < 0
    tri[clockwise] = tri[clockwise][:, [0, 2, 1]]
    used = np.unique(tri)
    remap = np.full(len(points), -1, dtype=np.int64)
    remap[used] = np.arange(len(used))
    return points[used], remap[tri].astype(np.int32)


def _depth(xy: np.ndarray, lm: np.ndarray) -> np.ndarray:
    """Height field z(x, y): ellipsoidal head + landmark-anchored features - drop outside the face."""
    (cx, cy), (ax, ay) = HEAD_ELLIPSE_PX
    centre = photo_to_template(np.array([cx, cy]))
    a, b = ax * METRES_PER_PX * 1.02, ay * METRES_PER_PX * 1.02
    r2 = ((xy[:, 0] - centre[0]) / a) ** 2 + ((xy[:, 1] - centre[1]) / b) ** 2
    z = 0.090 * np.sqrt(np.clip(1.0 - r2, 0.0, None))
    eye_r, eye_l = lm[36:42].mean(0), lm[42:48].mean(0)
    bumps = [  # (centre, height m, sigma m)
        (lm[27], 0.006, 0.006), (lm[28], 0.010, 0.006), (lm[29], 0.015, 0.006), (lm[30], 0.020, 0.007),
        (lm[31], 0.006, 0.005), (lm[35], 0.006, 0.005), (lm[33], 0.008, 0.005),
        (eye_r, -0.011, 0.011), (eye_l, -0.011, 0.011), (eye_r, 0.005, 0.006), (eye_l, 0.005, 0.006),
        (lm[19], 0.006, 0.012), (lm[24], 0.006, 0.012),
        ((lm[1] + lm[31]) / 2, 0.006, 0.015), ((lm[15] + lm[35]) / 2, 0.006, 0.015),
        (lm[62], 0.006, 0.012), (lm[51], 0.003, 0.006), (lm[57], 0.003, 0.006),
        (lm[8] + np.array([0.0, 0.010]), 0.007, 0.010),
    ]
    for c, h, s in bumps:
        z += h * _gauss(xy, c, s)
    # the face contour: jaw line + an arc over the forehead; outside it the surface falls back
    brow_top = lm[17:27] + np.array([0.0, 0.045])
    contour = np.concatenate([lm[0:17], brow_top[::-1]])
    dist, inside = _polygon_distance(xy, contour)
    z -= 0.018 * _smoothstep(np.where(inside, 0.0, dist) / 0.012)
    neck = -0.020 + 0.045 * np.sqrt(np.clip(1.0 - (xy[:, 0] / 0.06) ** 2, 0.0, None))
    return np.maximum(z, neck)


def _lid_curve(x: np.ndarray, pts: np.ndarray) -> np.ndarray:
    order = np.argsort(pts[:, 0])
    return np.interp(x, pts[order, 0], pts[order, 1])


def _eye_closure(xy: np.ndarray, lm: np.ndarray) -> np.ndarray:
    """Upper lids down onto the lower lids (AU43 / AU45): the eye opening collapses onto the lower lid."""
    disp = np.zeros((len(xy), 3))
    for outer, up1, up2, inner, lo1, lo2 in ((36, 37, 38, 39, 40, 41), (45, 44, 43, 42, 47, 46)):
        upper = lm[[outer, up1, up2, inner]]
        lower = lm[[outer, lo2, lo1, inner]]
        xmin, xmax = sorted((lm[outer, 0], lm[inner, 0]))
        x = xy[:, 0]
        within = (x > xmin) & (x < xmax)
        y_u = _lid_curve(x, upper) + 0.0008  # a little above the lid line so the whole lid margin moves
        y_l = _lid_curve(x, lower)
        opening = np.clip(y_u - y_l, 0.0, None)
        y = xy[:, 1]
        dy = np.where((y >= y_l) & (y <= y_u), -(y - y_l) * 0.95, 0.0)
        dy = np.where(y > y_u, -0.95 * opening * np.exp(-(y - y_u) / 0.008), dy)
        disp[:, 1] += np.where(within, dy, 0.0)
    return disp


def _jaw_field(xy: np.ndarray, lm: np.ndarray, drop: float) -> np.ndarray:
    """Lower lip, chin and jaw move down (AU26 / AU27): a region below the lip line, fading at the jaw edge."""
    y_line = lm[60:68, 1].mean()
    below = _smoothstep((y_line - xy[:, 1]) / 0.004)
    lateral = np.exp(-(np.abs(xy[:, 0]) / 0.055) ** 4)
    under_chin = _smoothstep((xy[:, 1] - (lm[8, 1] - 0.030)) / 0.025)
    w = below * lateral * under_chin
    return w[:, None] * np.array([0.0, -drop, -0.15 * drop])


def _au_field(au: int, xy: np.ndarray, lm: np.ndarray) -> np.ndarray:
    """Displacement [N, 3] of one facial AU at intensity 1 (FACS description in each comment)."""
    disp = np.zeros((len(xy), 3))

    def add(points, vec, sigma):
        for p in points:
            c = lm[p] if np.isscalar(p) else p
            disp[:] += _gauss(xy, c, sigma)[:, None] * np.asarray(vec, dtype=np.float64)

    mirror = np.array([-1.0, 1.0, 1.0])
    if au == 1:  # inner brow raiser
        add([21, 22], (0, 0.007, 0), 0.011)
        add([20, 23], (0, 0.003, 0), 0.008)
    elif au == 2:  # outer brow raiser
        add([17, 18, 25, 26], (0, 0.0055, 0), 0.010)
    elif au == 4:  # brow lowerer: brows down and drawn together
        add([20, 21], (0.003, -0.005, 0), 0.010)
        add([22, 23], (-0.003, -0.005, 0), 0.010)
        add([18, 19, 24, 25], (0, -0.003, 0), 0.009)
    elif au == 6:  # cheek raiser: cheeks up, lower lids pushed up
        cheek_r = 0.4 * lm[41] + 0.3 * lm[31] + 0.3 * lm[2]
        cheek_l = 0.4 * lm[46] + 0.3 * lm[35] + 0.3 * lm[14]
        add([cheek_r, cheek_l], (0, 0.007, 0.003), 0.012)
        add([40, 41, 46, 47], (0, 0.002, 0), 0.004)
        add([48, 54], (0, 0.0015, 0), 0.008)
    elif au == 7:  # lid tightener: lower lids up, upper lids slightly down
        add([40, 41, 46, 47], (0, 0.0025, 0), 0.004)
        add([37, 38, 43, 44], (0, -0.0012, 0), 0.004)
    elif au == 9:  # nose wrinkler: nose wings and upper lip up, inner brows down
        add([31, 35], (0, 0.004, 0), 0.006)
        add([28, 29], (0, 0.002, 0), 0.005)
        add([50, 51, 52], (0, 0.002, 0), 0.006)
        add([21, 22], (0, -0.003, 0), 0.008)
    elif au == 10:  # upper lip raiser
        add([50, 51, 52, 61, 62, 63], (0, 0.0035, 0.001), 0.006)
        add([31, 35], (0, 0.0015, 0), 0.005)
    elif au == 12:  # lip corner puller: corners out and up
        add([48], (-0.006, 0.0045, -0.002), 0.009)
        add([54], np.array((-0.006, 0.0045, -0.002)) * mirror, 0.009)
    elif au == 14:  # dimpler: corners drawn back and slightly outwards
        add([48], (-0.003, 0.0008, -0.005), 0.007)
        add([54], np.array((-0.003, 0.0008, -0.005)) * mirror, 0.007)
    elif au == 15:  # lip corner depressor
        add([48, 54], (0, -0.0055, 0), 0.008)
    elif au == 17:  # chin raiser: chin boss up, lower lip pushed up
        add([lm[8] + np.array([0.0, 0.012])], (0, 0.0045, 0.002), 0.011)
        add([56, 57, 58], (0, 0.002, 0.002), 0.006)
    elif au == 23:  # lip tightener: lips narrowed and thinned
        add([48], (0.0045, 0, 0), 0.006)
        add([54], (-0.0045, 0, 0), 0.006)
        add([50, 51, 52], (0, -0.002, 0), 0.006)
        add([56, 57, 58], (0, 0.002, 0), 0.006)
    elif au == 24:  # lip pressor: lips pressed together
        add([50, 51, 52, 61, 62, 63], (0, -0.0022, -0.001), 0.005)
        add([56, 57, 58, 65, 66, 67], (0, 0.0022, -0.001), 0.005)
    elif au == 25:  # lips part
        add([56, 57, 58, 65, 66, 67], (0, -0.0035, 0), 0.006)
        add([61, 62, 63], (0, 0.0008, 0), 0.005)
    elif au == 26:  # jaw drop
        disp += _jaw_field(xy, lm, 0.010)
    elif au == 27:  # mouth stretch: jaw wide open, corners drawn in
        disp += _jaw_field(xy, lm, 0.018)
        add([48], (0.004, 0, 0), 0.007)
        add([54], (-0.004, 0, 0), 0.007)
    elif au in (43, 45):  # eyes closed / blink: the same lid motion, told apart by timing
        disp += _eye_closure(xy, lm)
    else:  # pragma: no cover - every facial AU of ACTION_UNITS is handled above
        raise ValueError(f"no deformation defined for AU {au}")
    return disp


def _identity_fields(xy: np.ndarray, z: np.ndarray, lm: np.ndarray) -> np.ndarray:
    """[N, 3, N_IDENTITY] displacement per unit identity coefficient (about one standard deviation)."""
    fields = np.zeros((len(xy), 3, N_IDENTITY))
    x, y = xy[:, 0], xy[:, 1]
    y_c = lm[27:31, 1].mean()
    fields[:, 0, 0] = 0.05 * x  # face width
    fields[:, 1, 1] = 0.04 * (y - y_c)  # face height
    fields[:, 2, 2] = 0.07 * z  # depth
    g = _gauss(xy, lm[30], 0.009)
    fields[:, 1, 3], fields[:, 2, 3] = -0.0015 * g, 0.004 * g  # nose protrusion
    g_r, g_l = _gauss(xy, lm[31], 0.006), _gauss(xy, lm[35], 0.006)
    fields[:, 0, 4] = 0.0018 * (g_l - g_r)  # nose width
    e_r, e_l = _gauss(xy, lm[36:42].mean(0), 0.012), _gauss(xy, lm[42:48].mean(0), 0.012)
    fields[:, 0, 5] = 0.0022 * (e_l - e_r)  # eye spacing
    m_r, m_l = _gauss(xy, lm[48], 0.009), _gauss(xy, lm[54], 0.009)
    fields[:, 0, 6] = 0.0025 * (m_l - m_r)  # mouth width
    below_mouth = _smoothstep((lm[62, 1] - y) / 0.03)
    fields[:, 0, 7] = 0.06 * x * below_mouth  # jaw width
    below_lip = _smoothstep((lm[57, 1] - y) / 0.012)
    fields[:, 1, 8] = -0.004 * below_lip  # chin length (everything below the lower lip)
    b = _gauss(xy, lm[17:22].mean(0), (0.02, 0.008)) + _gauss(xy, lm[22:27].mean(0), (0.02, 0.008))
    fields[:, 1, 9] = 0.0025 * b  # brow height
    c_r = _gauss(xy, (lm[2] + lm[31]) / 2, 0.016)
    c_l = _gauss(xy, (lm[14] + lm[35]) / 2, 0.016)
    fields[:, 0, 10] = 0.002 * (c_l - c_r)
    fields[:, 2, 10] = 0.004 * (c_l + c_r)  # cheek fullness
    above_brows = np.clip(y - lm[17:27, 1].max(), 0.0, None)
    fields[:, 2, 11] = -0.12 * above_brows * _smoothstep(above_brows / 0.01)  # forehead slope
    return fields


@functools.lru_cache(maxsize=1)
def face_model() -> FaceModel:
    """Build (once per process) the fixed generator model; fully deterministic, no randomness."""
    lm2 = photo_to_template(ASTRONAUT_LANDMARKS_PX)
    xy, faces = _grid_mesh(lm2)
    z = _depth(xy, lm2)
    template = np.column_stack([xy, z])
    uv = template_to_photo(xy)

    # landmark embedding: the triangle containing each landmark in the xy plane, barycentric weights
    tri_xy = xy[faces]  # [F, 3, 2]
    face_idx = np.zeros(68, dtype=np.uint32)
    bary = np.zeros((68, 3))
    for k, p in enumerate(lm2):
        a, b, c = tri_xy[:, 0], tri_xy[:, 1], tri_xy[:, 2]
        den = (b[:, 1] - c[:, 1]) * (a[:, 0] - c[:, 0]) + (c[:, 0] - b[:, 0]) * (a[:, 1] - c[:, 1])
        l1 = ((b[:, 1] - c[:, 1]) * (p[0] - c[:, 0]) + (c[:, 0] - b[:, 0]) * (p[1] - c[:, 1])) / den
        l2 = ((c[:, 1] - a[:, 1]) * (p[0] - c[:, 0]) + (a[:, 0] - c[:, 0]) * (p[1] - c[:, 1])) / den
        l3 = 1.0 - l1 - l2
        score = np.minimum(np.minimum(l1, l2), l3)
        f = int(np.argmax(score))
        face_idx[k] = f
        bary[k] = np.clip([l1[f], l2[f], l3[f]], 0.0, 1.0)
        bary[k] /= bary[k].sum()

    id_basis = _identity_fields(xy, z, lm2)
    au_basis = np.stack([_au_field(au, xy, lm2) for au in FACIAL_ACTION_UNITS], axis=-1)
    blend_top, blend_bottom = photo_to_template(np.array([[0.0, NECK_BLEND_PX[0]], [0.0, NECK_BLEND_PX[1]]]))[:, 1]
    head_weight = _smoothstep((xy[:, 1] - blend_bottom) / (blend_top - blend_bottom))
    pivot = np.array([0.0, photo_to_template(np.array([0.0, 185.0]))[1], 0.0])
    arrays = dict(template=template, faces=faces, uv=uv, lmk_face_idx=face_idx, lmk_b_coords=bary,
                  id_basis=id_basis, au_basis=au_basis, head_weight=head_weight, pivot=pivot)
    for value in arrays.values():
        value.setflags(write=False)
    return FaceModel(**arrays)


def head_rotation(yaw_deg, pitch_deg, roll_deg) -> np.ndarray:
    """Rotation matrices [..., 3, 3] for head pose angles in degrees.

    Conventions (subject's point of view): yaw > 0 turns the head to the subject's left (AU51), pitch > 0
    lifts the chin (head up, AU53), roll > 0 tilts the top of the head to the subject's left (AU55).
    Applied as R = R_yaw @ R_pitch @ R_roll.
    """
    y, p, r = (np.deg2rad(np.asarray(v, dtype=np.float64)) for v in (yaw_deg, pitch_deg, roll_deg))
    cy, sy, cp, sp, cr, sr = np.cos(y), np.sin(y), np.cos(-p), np.sin(-p), np.cos(-r), np.sin(-r)
    one, zero = np.ones_like(cy), np.zeros_like(cy)
    def matrix(rows):
        return np.stack([np.stack(row, -1) for row in rows], -2)

    r_yaw = matrix([[cy, zero, sy], [zero, one, zero], [-sy, zero, cy]])
    r_pitch = matrix([[one, zero, zero], [zero, cp, -sp], [zero, sp, cp]])
    r_roll = matrix([[cr, -sr, zero], [sr, cr, zero], [zero, zero, one]])
    return r_yaw @ r_pitch @ r_roll


def pose_vertices(model: FaceModel, shape: np.ndarray, pose_deg: np.ndarray, translation: np.ndarray) -> np.ndarray:
    """Apply head pose (yaw, pitch, roll degrees) and head translation to unposed shape(s) [..., N, 3].

    The head rotates about the neck pivot; the rotation is blended to zero down the neck by the
    per-vertex head weight (linear blend skinning), so the bottom of the neck joins the static torso.
    ``pose_deg`` [..., 3] and ``translation`` [..., 3] broadcast with the leading axes of ``shape``.
    """
    pose_deg = np.asarray(pose_deg, dtype=np.float64)
    rot = head_rotation(pose_deg[..., 0], pose_deg[..., 1], pose_deg[..., 2])  # [..., 3, 3]
    rigid = np.einsum("...nj,...ij->...ni", shape - model.pivot, rot) + model.pivot
    rigid = rigid + np.asarray(translation)[..., None, :]
    w = model.head_weight[:, None]
    return w * rigid + (1.0 - w) * shape


@nb.njit(cache=True, nogil=True)
def _pose_kernel(base, au_basis, facial, rot, trans, pivot, head_weight, out):
    n_t, n_v, n_f = facial.shape[0], base.shape[0], facial.shape[1]
    active = np.empty(n_f, np.int64)
    for t in range(n_t):
        n_active = 0
        for f in range(n_f):  # most AUs are at rest at any time: skip their fields
            if facial[t, f] != 0.0:
                active[n_active] = f
                n_active += 1
        for i in range(n_v):
            p0, p1, p2 = base[i, 0], base[i, 1], base[i, 2]
            for q in range(n_active):
                f = active[q]
                a = facial[t, f]
                p0 += au_basis[i, 0, f] * a
                p1 += au_basis[i, 1, f] * a
                p2 += au_basis[i, 2, f] * a
            w = head_weight[i]
            d0, d1, d2 = p0 - pivot[0], p1 - pivot[1], p2 - pivot[2]
            for r in range(3):
                rigid = pivot[r] + trans[t, r] + rot[t, r, 0] * d0 + rot[t, r, 1] * d1 + rot[t, r, 2] * d2
                p = p0 if r == 0 else (p1 if r == 1 else p2)
                out[t, i, r] = w * rigid + (1.0 - w) * p


def posed_vertices(model: FaceModel, identity: np.ndarray, au: np.ndarray, pose_deg: np.ndarray,
                   translation: np.ndarray) -> np.ndarray:
    """World vertices [T, N, 3] for AU intensities [T, 24] (class order), head poses [T, 3], translations [T, 3].

    Same result as :func:`pose_vertices` of :meth:`FaceModel.shape`, in one numba loop (this runs for
    every event render, and numpy's einsum/BLAS on these small products are many times slower).
    """
    return pose_neutral(model, neutral_shape(model, identity), au, pose_deg, translation)


def neutral_shape(model: FaceModel, identity: np.ndarray) -> np.ndarray:
    """An identity's neutral shape [N, 3]: the template plus its identity offsets."""
    return model.template + np.einsum("nck,k->nc", model.id_basis, np.asarray(identity, dtype=np.float64))


def pose_neutral(model: FaceModel, neutral: np.ndarray, au: np.ndarray, pose_deg: np.ndarray,
                 translation: np.ndarray) -> np.ndarray:
    """:func:`posed_vertices` from the identity's :func:`neutral_shape`, which a recording computes once
    for its thousands of renders."""
    facial = np.ascontiguousarray(np.asarray(au, dtype=np.float64)[:, FACIAL_CLASS_INDEX])
    pose_deg = np.asarray(pose_deg, dtype=np.float64)
    rot = np.ascontiguousarray(head_rotation(pose_deg[:, 0], pose_deg[:, 1], pose_deg[:, 2]))
    out = np.empty((len(facial), model.n_vertices, 3))
    _pose_kernel(neutral, model.au_basis, facial, rot, np.ascontiguousarray(translation, dtype=np.float64),
                 model.pivot, model.head_weight, out)
    return out
