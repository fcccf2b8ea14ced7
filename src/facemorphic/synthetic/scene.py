"""Per-user scene: skin texture, lighting, room background, torso, and the two cameras.

Everything a user's recordings share is drawn once from the user's random generator: a recoloured copy
of the astronaut photograph (skin tone, brightness, gamma and a faint low-frequency albedo pattern, so
users differ in appearance), a light direction, a room wall behind the subject (a plane 1.2 m behind the
head with a door, shelves and posters), a static torso (the photograph's shoulders on a gently curved
plane), the RGB camera (640x480) and the event sensor (1280x720) with its own, uncalibrated viewpoint:
another focal length, position, principal point and a slight roll. The static parts (wall and torso)
are rendered once per camera into a background image.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from .face import photo_to_template
from .render import Camera, render, vertex_shade

RGB_SIZE = (640, 480)
EVENT_SIZE = (1280, 720)
#: Wall plane: z position and half extents (metres); the wall texture's resolution.
WALL_Z = -1.2
WALL_HALF = (2.6, 1.8)
WALL_TEXTURE_SIZE = (1300, 900)
#: The torso: photo pixel box of the photograph used as its texture, and the grid step (photo pixels).
TORSO_PHOTO_BOX = (85.0, 370.0, 178.0, 420.0)
TORSO_STEP_PX = 8.0


def luminance(rgb: np.ndarray) -> np.ndarray:
    """Rec. 601 luma of float RGB [..., 3] -> [..., 1] (what a monochrome event sensor integrates)."""
    return (rgb @ np.array([0.299, 0.587, 0.114], dtype=rgb.dtype))[..., None]


def _skin_texture(rng: np.random.Generator) -> np.ndarray:
    from skimage import data

    photo = data.astronaut().astype(np.float32) / 255.0
    gains = np.array([rng.uniform(0.88, 1.08), rng.uniform(0.82, 1.04), rng.uniform(0.78, 1.04)], np.float32)
    gamma = rng.uniform(0.85, 1.15)
    brightness = rng.uniform(0.9, 1.08)
    noise = ndimage.gaussian_filter(rng.standard_normal(photo.shape[:2]), 12.0)
    noise *= 0.05 / max(noise.std(), 1e-9)
    tex = brightness * (photo ** gamma) * gains * (1.0 + noise[..., None]).astype(np.float32)
    return np.clip(tex, 0.0, 1.0).astype(np.float32)


def _wall_texture(rng: np.random.Generator) -> np.ndarray:
    """A plausible room wall: a tinted gradient with a door, shelves and framed posters, softly blurred."""
    w, h = WALL_TEXTURE_SIZE
    base = rng.uniform(0.45, 0.85, size=3)
    tint = rng.uniform(-0.08, 0.08, size=3)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = base[None, None, :] + tint[None, None, :] * (xx / w - 0.5)[..., None] - 0.12 * (yy / h)[..., None]
    img = img.astype(np.float32)
    for _ in range(rng.integers(3, 7)):
        rw, rh = int(rng.uniform(0.05, 0.2) * w), int(rng.uniform(0.05, 0.35) * h)
        x0, y0 = int(rng.uniform(0, w - rw)), int(rng.uniform(0, h - rh))
        colour = rng.uniform(0.1, 0.95, size=3)
        img[y0:y0 + rh, x0:x0 + rw] = colour
        border = rng.uniform(0.05, 0.3)
        img[y0:y0 + rh, x0:x0 + 4] = border
        img[y0:y0 + rh, x0 + rw - 4:x0 + rw] = border
        img[y0:y0 + 4, x0:x0 + rw] = border
        img[y0 + rh - 4:y0 + rh, x0:x0 + rw] = border
    door_x = int(rng.choice([rng.uniform(0.02, 0.2), rng.uniform(0.72, 0.9)]) * w)
    img[int(0.25 * h):, door_x:door_x + int(0.12 * w)] = rng.uniform(0.25, 0.6, size=3)
    img = ndimage.gaussian_filter(img, sigma=(2.0, 2.0, 0))
    return np.clip(img, 0.0, 1.0).astype(np.float32)


def _grid_quads(nx: int, ny: int) -> np.ndarray:
    idx = np.arange(nx * ny).reshape(ny, nx)
    a, b, c, d = idx[:-1, :-1].ravel(), idx[:-1, 1:].ravel(), idx[1:, 1:].ravel(), idx[1:, :-1].ravel()
    return np.concatenate([np.stack([a, b, c], -1), np.stack([a, c, d], -1)]).astype(np.int32)


@dataclass
class Scene:
    """One user's scene; see the module docstring."""

    texture_rgb: np.ndarray  # [512, 512, 3] float32
    texture_gray: np.ndarray  # [512, 512, 1] float32
    light_dir: np.ndarray  # [3] unit
    ambient: float
    diffuse: float
    rgb_camera: Camera
    event_camera: Camera
    background_rgb: np.ndarray  # [480, 640, 3] float32
    background_event: np.ndarray  # [720, 1280, 1] float32

    def shade(self, vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
        return vertex_shade(vertices, faces, self.light_dir, self.ambient, self.diffuse)


def make_scene(rng: np.random.Generator) -> Scene:
    """Draw one user's scene from ``rng`` (see the module docstring)."""
    texture_rgb = _skin_texture(rng)
    light = np.array([rng.uniform(-0.45, 0.45), rng.uniform(0.0, 0.45), 1.0])
    light /= np.linalg.norm(light)
    ambient = float(rng.uniform(0.45, 0.6))
    diffuse = float(rng.uniform(0.95, 1.1) - ambient)

    face_centre = np.array([0.0, 0.0, 0.06])
    distance = rng.uniform(0.58, 0.68)
    rgb_pos = np.array([rng.uniform(-0.03, 0.03), rng.uniform(-0.02, 0.03), distance])
    rgb_target = face_centre + np.array([rng.uniform(-0.02, 0.02), rng.uniform(-0.005, 0.02), 0.0])
    rgb_camera = Camera.look_at(rgb_pos, rgb_target, rng.uniform(650, 740), *RGB_SIZE,
                                roll_deg=rng.uniform(-2.0, 2.0))
    ev_pos = rgb_pos + np.array([rng.choice([-1, 1]) * rng.uniform(0.04, 0.08), rng.uniform(-0.05, 0.0),
                                 rng.uniform(-0.03, 0.05)])
    ev_target = face_centre + np.array([rng.uniform(-0.03, 0.03), rng.uniform(-0.02, 0.02), 0.0])
    principal = (EVENT_SIZE[0] / 2 + rng.uniform(-40, 40), EVENT_SIZE[1] / 2 + rng.uniform(-25, 25))
    event_camera = Camera.look_at(ev_pos, ev_target, rng.uniform(760, 880), *EVENT_SIZE,
                                  roll_deg=rng.uniform(-4.0, 4.0), principal=principal)

    wall = _wall_texture(rng)
    wall_offset = rng.uniform(-0.4, 0.4, size=2)
    (hx, hy), (tw, th) = WALL_HALF, WALL_TEXTURE_SIZE
    wall_vertices = np.array([[-hx, -hy, WALL_Z], [hx, -hy, WALL_Z], [hx, hy, WALL_Z], [-hx, hy, WALL_Z]])
    wall_vertices[:, :2] += wall_offset
    wall_uv = np.array([[0, th - 1], [tw - 1, th - 1], [tw - 1, 0], [0, 0]], dtype=np.float64)
    wall_faces = np.array([[0, 1, 2], [0, 2, 3]], dtype=np.int32)

    # a grid whose rows bend with the shoulders: its top edge slopes away from the neck (the wall shows
    # above it), every column running from that edge down to the bottom of the photograph's box
    u0, u1, v0, v1 = TORSO_PHOTO_BOX
    us = np.arange(u0, u1 + 1e-9, TORSO_STEP_PX)
    shoulder_top = v0 + 0.6 * np.clip(np.abs(us - 227.0) - 55.0, 0.0, None)
    n_rows = int(np.ceil((v1 - v0) / TORSO_STEP_PX)) + 1
    fraction = np.linspace(1.0, 0.0, n_rows)[:, None]  # bottom row first so rows grow upwards
    gv = shoulder_top[None, :] + fraction * (v1 - shoulder_top[None, :])
    gu = np.broadcast_to(us[None, :], gv.shape)
    torso_uv = np.stack([gu.ravel(), gv.ravel()], -1)
    txy = photo_to_template(torso_uv)
    torso_z = 0.012 - 0.6 * txy[:, 0] ** 2 - 0.05 * np.clip(-txy[:, 1] - 0.12, 0, None)
    torso_vertices = np.column_stack([txy, torso_z])
    torso_faces = _grid_quads(len(us), n_rows)
    torso_shade = vertex_shade(torso_vertices, torso_faces, light, ambient, diffuse)
    wall_shade = np.ones(4)

    texture_gray = luminance(texture_rgb)
    backgrounds = []
    for cam, tex_face, tex_wall in ((rgb_camera, texture_rgb, wall), (event_camera, texture_gray, luminance(wall))):
        nc = tex_face.shape[-1]
        bg = np.zeros((cam.height, cam.width, nc), np.float32)
        bg = render(cam, wall_vertices, wall_faces, wall_uv, wall_shade, tex_wall, bg)
        bg = render(cam, torso_vertices, torso_faces, torso_uv, torso_shade, tex_face, bg)
        backgrounds.append(bg)
    return Scene(texture_rgb, texture_gray, light, ambient, diffuse, rgb_camera, event_camera, *backgrounds)

