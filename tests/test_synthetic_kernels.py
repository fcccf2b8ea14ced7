"""The synthetic generator's compiled kernels against straightforward numpy references on small random
scenes: the rasteriser, vertex shading, projection, the moving-region bounds, the YUV conversion and the
event sort. A kernel that drifts from its reference changes every generated recording."""

from __future__ import annotations

import numpy as np
import pytest

from facemorphic.events.raw import EVENT_DTYPE
from facemorphic.synthetic.esim import sort_events
from facemorphic.synthetic.recording import _mesh_box, _moving_bounds, _store_uint8, _store_yuv420
from facemorphic.synthetic.render import Camera, MeshView, rasterize, render, vertex_shade


def _reference_rasterize(px, depth, shade, uv, faces, texture, image, x0, y0):
    """Every pixel against every triangle: barycentric weights, nearest surface, bilinear texture."""
    h, w, nc = image.shape
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    zbuf = np.full((h, w), np.inf)
    th, tw = texture.shape[:2]
    for i0, i1, i2 in faces:
        (ax, ay), (bx, by), (cx, cy) = px[i0] - (x0, y0), px[i1] - (x0, y0), px[i2] - (x0, y0)
        area = (bx - ax) * (cy - ay) - (by - ay) * (cx - ax)
        if area >= 0:  # back face
            continue
        w0 = ((bx - xs) * (cy - ys) - (by - ys) * (cx - xs)) / area
        w1 = ((cx - xs) * (ay - ys) - (cy - ys) * (ax - xs)) / area
        w2 = 1.0 - w0 - w1
        z = w0 * depth[i0] + w1 * depth[i1] + w2 * depth[i2]
        drawn = (w0 >= -1e-9) & (w1 >= -1e-9) & (w2 >= -1e-9) & (z < zbuf)
        zbuf[drawn] = z[drawn]
        u = np.clip(w0 * uv[i0, 0] + w1 * uv[i1, 0] + w2 * uv[i2, 0], 0, tw - 1.001)
        v = np.clip(w0 * uv[i0, 1] + w1 * uv[i1, 1] + w2 * uv[i2, 1], 0, th - 1.001)
        s = w0 * shade[i0] + w1 * shade[i1] + w2 * shade[i2]
        iu, iv = u.astype(int), v.astype(int)
        fu, fv = (u - iu)[..., None], (v - iv)[..., None]
        val = ((1 - fu) * (1 - fv) * texture[iv, iu] + fu * (1 - fv) * texture[iv, iu + 1]
               + (1 - fu) * fv * texture[iv + 1, iu] + fu * fv * texture[iv + 1, iu + 1])
        image[drawn] = np.minimum(val * s[..., None], 1.0)[drawn]
    return image


def _random_mesh(rng, n_faces=160, size=(56, 44), offset=(7, 5)):
    """Overlapping triangles of 2-15 pixels at random depths, both windings, some crossing the window edge."""
    centres = rng.uniform(-4, 4, (n_faces, 1, 2)) + rng.uniform(0, 1, (n_faces, 1, 2)) * size + offset
    px = (centres + rng.uniform(-7, 7, (n_faces, 3, 2))).reshape(-1, 2)
    depth = rng.uniform(1.0, 2.0, (n_faces, 1)).repeat(3, axis=1).ravel() + rng.uniform(0, 0.3, 3 * n_faces)
    faces = np.arange(3 * n_faces, dtype=np.int32).reshape(-1, 3)
    uv = rng.uniform(0, 15, (3 * n_faces, 2))
    shade = rng.uniform(0.4, 1.1, 3 * n_faces)
    return px, depth, shade, uv, faces


@pytest.mark.parametrize("channels", [1, 3])
def test_rasterize_matches_the_per_pixel_reference(channels):
    rng = np.random.default_rng(channels)
    px, depth, shade, uv, faces = _random_mesh(rng)
    texture = rng.uniform(0, 1, (16, 16, channels)).astype(np.float32)
    background = rng.uniform(0, 1, (44, 56, channels)).astype(np.float32)
    x0, y0 = 7, 5
    image, zbuf = background.copy(), np.full((44, 56), np.inf)
    rasterize(px, depth, shade, uv, faces, texture, image, zbuf, x0, y0)
    expected = _reference_rasterize(px, depth, shade, uv, faces, texture, background.copy(), x0, y0)
    assert (image != background).any(axis=-1).mean() > 0.3  # triangles cover much of the window
    np.testing.assert_allclose(image, expected, atol=1e-6)
    # the reused-buffer view draws the same pixels into any box of its window, float32 depths and all
    camera = Camera(100.0, 0.0, 0.0, np.eye(3), np.zeros(3), 80, 60)
    view = MeshView(camera, faces, uv, texture, np.pad(background, ((5, 11), (7, 17), (0, 0))), (x0, y0, 56, 44))
    np.testing.assert_allclose(view.draw(px, depth, shade, (x0, y0, 56, 44)), expected, atol=1e-6)
    np.testing.assert_allclose(view.draw(px, depth, shade, (x0 + 9, y0 + 4, 30, 21)), expected[4:25, 9:39], atol=1e-6)


def test_vertex_shade_and_projection_match_numpy():
    rng = np.random.default_rng(0)
    vertices = rng.normal(0, 0.05, (40, 3)) + [0, 0, 0.6]
    faces = rng.integers(0, 40, (70, 3)).astype(np.int32)
    light = np.array([0.3, 0.2, 1.0]) / np.linalg.norm([0.3, 0.2, 1.0])
    e1, e2 = vertices[faces[:, 1]] - vertices[faces[:, 0]], vertices[faces[:, 2]] - vertices[faces[:, 0]]
    normals = np.zeros_like(vertices)
    for k in range(3):
        np.add.at(normals, faces[:, k], np.cross(e1, e2))
    length = np.linalg.norm(normals, axis=1, keepdims=True)
    normals = np.where(length > 0, normals / np.where(length > 0, length, 1), 0)
    np.testing.assert_allclose(vertex_shade(vertices, faces, light, 0.5, 0.6),
                               0.5 + 0.6 * np.clip(normals @ light, 0, None), atol=1e-12)

    camera = Camera.look_at([0.05, -0.02, 1.2], [0, 0, 0.6], 800.0, 1280, 720, roll_deg=3.0, principal=(650, 350))
    points = rng.normal(0, 0.1, (2, 5, 3)) + [0, 0, 0.6]
    cam = (points - camera.position) @ camera.rotation.T
    px, z = camera.project(points)
    assert px.shape == (2, 5, 2) and z.shape == (2, 5)
    np.testing.assert_allclose(z, cam[..., 2], atol=1e-12)
    np.testing.assert_allclose(px, camera.focal * cam[..., :2] / cam[..., 2:] + [camera.cx, camera.cy], atol=1e-9)
    # render() of the whole image is the per-pixel reference over a background
    image = render(Camera(1.0, 0.0, 0.0, np.eye(3), np.zeros(3), 12, 10), np.c_[rng.uniform(0, 12, (3, 2)) * 1.0,
                                                                                    np.ones(3)],
                   np.array([[0, 2, 1]], np.int32), np.full((3, 2), 1.5), np.ones(3), np.ones((4, 4, 1), np.float32),
                   np.zeros((10, 12, 1), np.float32))
    assert image.shape == (10, 12, 1) and image.max() <= 1.0


def test_moving_bounds_match_the_numpy_rings():
    rng = np.random.default_rng(1)
    n = 300
    faces = rng.integers(0, n, (500, 3)).astype(np.int32)
    path = np.cumsum(rng.normal(0, 0.05, (6, n, 2)), axis=0) + rng.uniform(0, 500, (1, n, 2))
    path[:, :20] += np.linspace(0, 3, 6)[:, None, None]  # a few fast vertices
    lengths = np.linalg.norm(np.diff(path, axis=0), axis=-1).sum(axis=0)
    marked = lengths > 0.5
    for _ in range(2):
        touching = marked[faces].any(axis=1)
        marked = np.zeros_like(marked)
        marked[faces[touching]] = True
    lo, hi = _moving_bounds(faces, path, 0.5)
    np.testing.assert_array_equal(lo, path[:, marked].reshape(-1, 2).min(axis=0))
    np.testing.assert_array_equal(hi, path[:, marked].reshape(-1, 2).max(axis=0))
    lo, hi = _moving_bounds(faces, np.repeat(path[:1], 6, axis=0), 0.5)  # nothing moves
    assert np.all(lo == np.inf) and np.all(hi == -np.inf)
    window = (10, 20, 400, 300)
    box = _mesh_box(path[0], window)
    pts = path[0]
    assert box == (max(int(np.floor(pts[:, 0].min())) - 1, 10), max(int(np.floor(pts[:, 1].min())) - 1, 20),
                   box[2], box[3])
    assert box[0] + box[2] == min(int(np.ceil(pts[:, 0].max())) + 1, 409) + 1
    assert _mesh_box(pts + 2000, window) is None


def test_8bit_and_yuv420_conversions_match_the_formulas_and_libswscale():
    import av

    rng = np.random.default_rng(2)
    image = rng.uniform(-0.05, 1.05, (48, 64, 3)).astype(np.float32)
    image[8:24, 16:40] = [0.5, 0.25, 0.8]  # a flat patch: chroma without neighbours of other colours
    rgb = np.empty(image.shape, np.uint8)
    _store_uint8(image, rgb)
    np.testing.assert_array_equal(rgb, np.floor(np.clip(image.astype(np.float64), 0, 1) * 255 + 0.5))
    frame = np.empty((72, 64), np.uint8)
    luma, cb, cr = frame[:48], frame[48:60].reshape(24, 32), frame[60:].reshape(24, 32)
    _store_yuv420(image, luma, cb, cr)
    r, g, b = (rgb[..., k].astype(np.float64) for k in range(3))
    np.testing.assert_allclose(luma, 16 + (65.481 * r + 128.553 * g + 24.966 * b) / 255, atol=0.51)
    blocks = rgb.reshape(24, 2, 32, 2, 3).astype(np.float64).mean(axis=(1, 3))
    np.testing.assert_allclose(cb, 128 + (-37.797 * blocks[..., 0] - 74.203 * blocks[..., 1] + 112 * blocks[..., 2])
                               / 255, atol=0.51)
    np.testing.assert_allclose(cr, 128 + (112 * blocks[..., 0] - 93.786 * blocks[..., 1] - 18.214 * blocks[..., 2])
                               / 255, atol=0.51)
    swscale = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p").to_ndarray()
    assert np.abs(luma.astype(int) - swscale[:48]).max() <= 1
    flat = (slice(5, 11), slice(9, 19))  # chroma rows and columns inside the flat patch
    np.testing.assert_array_equal(cb[flat], swscale[48:60].reshape(24, 32)[flat])
    np.testing.assert_array_equal(cr[flat], swscale[60:].reshape(24, 32)[flat])


def test_sort_events_is_the_readout_order():
    rng = np.random.default_rng(4)
    events = np.empty(5000, EVENT_DTYPE)
    events["t"] = rng.integers(0, 3000, len(events))  # many equal times, and some equal events
    events["x"], events["y"] = rng.integers(0, 1280, len(events)), rng.integers(0, 720, len(events))
    events["p"] = rng.integers(0, 2, len(events))
    events[100:200] = events[:100]
    expected = events[np.lexsort((events["x"], events["p"], events["y"], events["t"]))]
    assert sort_events(events).tobytes() == expected.tobytes()
    assert len(sort_events(events[:0])) == 0
    with pytest.raises(ValueError, match="sort key"):
        sort_events(np.array([(-1, 0, 0, 0)], EVENT_DTYPE))
