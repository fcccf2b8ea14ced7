"""One synthetic recording: the RGB video, the event stream and their ground truth.

The RGB camera samples the subject's :class:`~facemorphic.synthetic.motion.Script` at 30 fps; the
event sensor samples the same motion from its own viewpoint with ESIM's adaptive sampling applied per
region: the whole window of the sensor the head can reach during the recording (the rest of the sensor
sees the static room and only produces background noise) once per frame period, and the region that
moves faster than one render per frame period allows as often as its fastest vertex needs to move at
most ``max_motion_px`` per render (up to 24 times per frame period, 720 Hz).
:class:`~facemorphic.synthetic.esim.EventSimulator` turns the rendered intensity into events, each pixel
interpolating its log intensity between its own samples. The event clock starts at 0 at the
first event render; RGB time zero is at ``event_offset_us`` on that clock, so the event stream starts a
little before the video, as when a person starts the two recorders by hand.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import numba as nb
import numpy as np

from ..fileio import atomic_path
from ..options import defaults
from .esim import EventSimulator, shot_noise, sort_events
from .face import FaceModel, neutral_shape, pose_neutral
from .motion import Script
from .options import SynthOptions
from .render import MeshView
from .scene import Scene

_SYNTH = defaults(SynthOptions)


@dataclass(frozen=True)
class EventOptions:
    """Event simulation parameters (see :mod:`facemorphic.synthetic.esim`)."""

    # defaults (and their meaning) from :class:`~.options.SynthOptions`, their one source
    min_substeps: int = _SYNTH["min_substeps"]
    max_substeps: int = _SYNTH["max_substeps"]
    max_motion_px: float = _SYNTH["max_motion_px"]
    contrast: float = _SYNTH["contrast"]
    contrast_sigma: float = _SYNTH["contrast_sigma"]
    refractory_us: float = _SYNTH["refractory_us"]
    noise_rate_hz: float = _SYNTH["noise_rate_hz"]
    # True: renders between block ends cover only the fast-moving region, and blocks where nothing moves
    # faster than max_motion_px get one render; False: every render covers the whole window, at least
    # min_substeps per frame period (the generator before per-region sampling; a benchmark baseline)
    region_renders: bool = True


@dataclass(frozen=True)
class Truth:
    """Per-frame truth of one recording (arrays over the RGB frames)."""

    landmarks_rgb: np.ndarray  # [T, 68, 2] float32
    landmarks_event: np.ndarray  # [T, 68, 2] float32
    au_intensity: np.ndarray  # [T, 24] float32
    head_pose: np.ndarray  # [T, 3] float32
    rgb_times_s: np.ndarray  # [T] float64
    event_window: tuple[int, int, int, int]  # x0, y0, w, h of the simulated sensor region
    n_events: int
    event_render_hz: float  # mean rate of event renders of the fastest-moving region
    n_event_renders: int  # renders of the event view, whole window or a moving region


@nb.njit(cache=True, nogil=True)
def _byte(value):
    """An intensity in [0, 1] as an 8-bit level, rounded."""
    return np.int32(min(max(value, 0.0), 1.0) * 255.0 + 0.5)


@nb.njit(cache=True, nogil=True)
def _store_uint8(image, out):
    """``out`` [h, w, C] uint8 = ``image`` [h, w, C] in [0, 1], rounded: one pass instead of numpy's four."""
    for y in range(image.shape[0]):
        for x in range(image.shape[1]):
            for c in range(image.shape[2]):
                out[y, x, c] = _byte(image[y, x, c])


@nb.njit(cache=True, nogil=True)
def _store_yuv420(image, luma, cb, cr):
    """The 8-bit levels of RGB ``image`` [h, w, 3] in [0, 1] (h, w even) as planar YUV 4:2:0: ``luma``
    [h, w], ``cb``, ``cr`` [h/2, w/2].

    BT.601 limited range in 16-bit fixed point, chroma from the mean of each 2x2 block: the conversion
    libswscale applies to rgb24 before H.264, within one level, but only over the rendered box (and
    without an 8-bit RGB frame in between), where libswscale converts the whole frame at the cost of
    the encoding itself.
    """
    for y in range(0, image.shape[0], 2):
        for x in range(0, image.shape[1], 2):
            r_sum = g_sum = b_sum = np.int32(0)
            for dy in range(2):
                for dx in range(2):
                    r, g, b = _byte(image[y + dy, x + dx, 0]), _byte(image[y + dy, x + dx, 1]), _byte(
                        image[y + dy, x + dx, 2])
                    luma[y + dy, x + dx] = (16829 * r + 33039 * g + 6416 * b + (16 << 16) + 32768) >> 16
                    r_sum += r
                    g_sum += g
                    b_sum += b
            cb[y // 2, x // 2] = (-2428 * r_sum - 4767 * g_sum + 7195 * b_sum + (128 << 16) + 32768) >> 16
            cr[y // 2, x // 2] = (7195 * r_sum - 6025 * g_sum - 1170 * b_sum + (128 << 16) + 32768) >> 16


class _RgbWriter:
    """Writes frames as an H.264 MP4 (PyAV, one thread, deterministic) or a folder of timestamped JPEGs.

    A frame is the static ``background`` (float RGB [H, W, 3], converted once) with a rendered box
    pasted in, so each frame converts only that box to 8 bits (and to YUV for H.264).
    """

    def __init__(self, path: Path, fmt: str, fps: int, background: np.ndarray, wall_start: dt.datetime):
        self.path, self.fmt, self.fps, self.wall_start = path, fmt, fps, wall_start
        self.height, self.width = background.shape[:2]
        self.background = background
        self.k = 0

    def __enter__(self):
        if self.fmt == "mp4":
            import av

            self._atomic = atomic_path(self.path)
            tmp = self._atomic.__enter__()
            self._container = av.open(str(tmp), mode="w", format="mp4")
            stream = self._container.add_stream("libx264", rate=self.fps)
            stream.width, stream.height = self.width, self.height
            stream.pix_fmt = "yuv420p"
            stream.codec_context.thread_count = 1
            stream.options = {"crf": "18", "preset": "veryfast", "threads": "1"}
            self._stream = stream
            self._frame = np.empty((self.height * 3 // 2, self.width), np.uint8)  # PyAV's yuv420p: Y, U, V
            self._background_frame = np.empty_like(self._frame)
            _store_yuv420(self.background, *self._planes(self._background_frame))
        else:
            self.path.mkdir(parents=True, exist_ok=True)
            self._background_frame = np.empty(self.background.shape, np.uint8)
            _store_uint8(self.background, self._background_frame)
        return self

    def _planes(self, frame: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        h, w = self.height, self.width
        return (frame[:h], frame[h:h * 5 // 4].reshape(h // 2, w // 2), frame[h * 5 // 4:].reshape(h // 2, w // 2))

    def write(self, crop: np.ndarray | None, box: tuple[int, int, int, int] | None) -> None:
        """Append the background with ``crop`` (float RGB [h, w, 3] in [0, 1]) at ``box`` (x0, y0, w, h;
        even numbers for MP4), or the bare background when ``crop`` is None."""
        if self.fmt == "mp4":
            import av

            self._frame[:] = self._background_frame
            if crop is not None:
                x0, y0, w, h = box
                luma, cb, cr = self._planes(self._frame)
                _store_yuv420(crop, luma[y0:y0 + h, x0:x0 + w], cb[y0 // 2:(y0 + h) // 2, x0 // 2:(x0 + w) // 2],
                              cr[y0 // 2:(y0 + h) // 2, x0 // 2:(x0 + w) // 2])
            vf = av.VideoFrame.from_ndarray(self._frame, format="yuv420p")
            vf.pts = self.k
            for packet in self._stream.encode(vf):
                self._container.mux(packet)
        else:
            from PIL import Image

            frame = self._background_frame.copy()
            if crop is not None:
                x0, y0, w, h = box
                _store_uint8(crop, frame[y0:y0 + h, x0:x0 + w])
            stamp = self.wall_start + dt.timedelta(microseconds=round(self.k * 1e6 / self.fps))
            name = f"frame_{self.k}_{stamp.strftime('%H:%M:%S.%f')}.jpg"
            with atomic_path(self.path / name) as tmp:
                Image.fromarray(frame).save(tmp, format="JPEG", quality=92)
        self.k += 1

    def __exit__(self, exc_type, exc, tb):
        if self.fmt == "mp4":
            if exc_type is None:
                for packet in self._stream.encode(None):
                    self._container.mux(packet)
            self._container.close()
            return self._atomic.__exit__(exc_type, exc, tb)
        return False


@nb.njit(cache=True, nogil=True)
def _bounds(points):
    """Bounds (lo [x, y], hi [x, y]) of points [M, 2]; numpy's reductions along the first axis of a
    two-column array are several times slower than this loop."""
    lo, hi = np.full(2, np.inf), np.full(2, -np.inf)
    for i in range(points.shape[0]):
        for k in range(2):
            lo[k] = min(lo[k], points[i, k])
            hi[k] = max(hi[k], points[i, k])
    return lo, hi


def _mesh_box(px: np.ndarray, window: tuple[int, int, int, int], margin: int = 1):
    """The part (x0, y0, w, h) of ``window`` inside the bounding box of points ``px`` [..., 2] plus
    ``margin`` pixels, or None when they do not meet."""
    return _clip_box(*_bounds(px.reshape(-1, 2)), window, margin)


def _clip_box(lo, hi, window: tuple[int, int, int, int], margin: int):
    """The part (x0, y0, w, h) of ``window`` inside [lo, hi] (x, y pixel bounds) plus ``margin``, or None
    when they do not meet or the bounds are empty."""
    if not (lo[0] <= hi[0] and lo[1] <= hi[1]):
        return None
    wx, wy, ww, wh = window
    x0 = max(int(np.floor(lo[0])) - margin, wx)
    y0 = max(int(np.floor(lo[1])) - margin, wy)
    x1 = min(int(np.ceil(hi[0])) + margin, wx + ww - 1)
    y1 = min(int(np.ceil(hi[1])) + margin, wy + wh - 1)
    if x1 < x0 or y1 < y0:
        return None
    return x0, y0, x1 - x0 + 1, y1 - y0 + 1


@nb.njit(cache=True, nogil=True)
def _largest_steps(path_px):
    """Largest vertex motion [S - 1] between consecutive positions of ``path_px`` [S, N, 2]; numpy's
    diff, norm and max over a recording's probe positions are an order of magnitude slower."""
    out = np.zeros(path_px.shape[0] - 1)
    for s in range(path_px.shape[0] - 1):
        for i in range(path_px.shape[1]):
            dx = path_px[s + 1, i, 0] - path_px[s, i, 0]
            dy = path_px[s + 1, i, 1] - path_px[s, i, 1]
            out[s] = max(out[s], np.sqrt(dx * dx + dy * dy))
    return out


@nb.njit(cache=True, nogil=True)
def _moving_bounds(faces, path_px, max_motion_px):
    """Pixel bounds (lo [x, y], hi [x, y]) swept by the vertices whose rendering can change faster than
    one render per block allows (lo = +inf, hi = -inf when there are none).

    ``path_px`` [S, N, 2] are the vertices' sensor positions at the block's start and its renders.
    A vertex is fast when its path is longer than ``max_motion_px``; a triangle's pixels also depend
    on its vertices' shades, which follow the normals of their neighbours, so every vertex of a
    triangle that shares a vertex with a triangle touching a fast vertex counts (two rings).
    One compiled pass: numpy needs a temporary as large as the mesh for every step of the path and
    every ring.
    """
    n_steps, n_vertices = path_px.shape[0], path_px.shape[1]
    marked = np.zeros(n_vertices, np.bool_)
    for i in range(n_vertices):
        length = 0.0
        for s in range(n_steps - 1):
            dx = path_px[s + 1, i, 0] - path_px[s, i, 0]
            dy = path_px[s + 1, i, 1] - path_px[s, i, 1]
            length += np.sqrt(dx * dx + dy * dy)
        marked[i] = length > max_motion_px
    for _ in range(2):
        ring = np.zeros(n_vertices, np.bool_)
        for f in range(faces.shape[0]):
            a, b, c = faces[f, 0], faces[f, 1], faces[f, 2]
            if marked[a] or marked[b] or marked[c]:
                ring[a] = ring[b] = ring[c] = True
        marked = ring
    lo, hi = np.full(2, np.inf), np.full(2, -np.inf)
    for i in range(n_vertices):
        if marked[i]:
            for s in range(n_steps):
                for k in range(2):
                    lo[k] = min(lo[k], path_px[s, i, k])
                    hi[k] = max(hi[k], path_px[s, i, k])
    return lo, hi


def _write_rgb(model: FaceModel, scene: Scene, verts: np.ndarray, rgb_path: Path, rgb_format: str, fps: int,
               wall_start: dt.datetime) -> None:
    """Render and write the RGB frames of posed vertices ``verts`` [T, N, 3].

    Each frame renders only the mesh's bounding box (grown to even bounds, whole 2x2 chroma blocks)
    over the background: the same pixels as rendering the whole frame.
    """
    cam = scene.rgb_camera
    full = (0, 0, cam.width, cam.height)
    view = MeshView(cam, model.faces, model.uv, scene.texture_rgb, scene.background_rgb, full)
    frames_px, frames_depth = cam.project(verts)
    with _RgbWriter(rgb_path, rgb_format, fps, scene.background_rgb, wall_start) as out:
        for v, px, depth in zip(verts, frames_px, frames_depth):
            box = _mesh_box(px, full)
            if box is None:
                out.write(None, None)
                continue
            x0, y0, w, h = box
            x1, y1 = min(x0 + w + (x0 + w) % 2, cam.width), min(y0 + h + (y0 + h) % 2, cam.height)
            box = (x0 - x0 % 2, y0 - y0 % 2, x1 - x0 + x0 % 2, y1 - y0 + y0 % 2)
            out.write(view.draw(px, depth, scene.shade(v, model.faces), box), box)


def generate_recording(model: FaceModel, scene: Scene, identity: np.ndarray, script: Script,
                       thresholds: tuple[np.ndarray, np.ndarray], rng: np.random.Generator,
                       rgb_path: Path, raw_path: Path, event_offset_us: int, options: EventOptions,
                       fps: int = 30, rgb_format: str = "mp4",
                       wall_start: dt.datetime | None = None) -> Truth:
    """Render and write one recording (RGB video at ``rgb_path``, EVT 3.0 at ``raw_path``); return its truth."""
    from ..events.evt3_writer import Evt3Writer

    neutral = neutral_shape(model, identity)

    def posed_at(times: np.ndarray) -> np.ndarray:
        return pose_neutral(model, neutral, *script.evaluate(times))

    n_frames = int(round(script.duration * fps))
    rgb_times = np.arange(n_frames) / fps
    au, pose, translation = script.evaluate(rgb_times)
    verts = pose_neutral(model, neutral, au, pose, translation)
    landmarks3d = model.landmarks(verts)
    lm_rgb, _ = scene.rgb_camera.project(landmarks3d)
    lm_ev, _ = scene.event_camera.project(landmarks3d)
    _write_rgb(model, scene, verts, rgb_path, rgb_format, fps, wall_start or dt.datetime(2024, 1, 1, 10, 0, 0))

    # Event renders, from event time 0 (RGB time -offset) to the end of the last RGB frame's interval, in
    # blocks of one frame period. The whole window (the sensor region the head reaches at any time) is
    # rendered at every block end. Where some vertex moves more than ``max_motion_px`` sensor pixels
    # during a block, the block is split into as many renders as its fastest vertex needs to move at
    # most ``max_motion_px`` per render (ESIM's adaptive sampling), within [min_substeps,
    # max_substeps], and the renders before the block end cover only the region those fast vertices
    # (and their neighbours) sweep: every other pixel changes slowly enough for one sample per block.
    ev_cam = scene.event_camera
    offset_s = event_offset_us * 1e-6
    frame_s = 1.0 / fps
    n_blocks = int(np.ceil((n_frames * frame_s + offset_s) / frame_s))
    probe_times = -offset_s + np.arange(2 * n_blocks + 1) * (frame_s / 2)
    probe_px, _ = ev_cam.project(posed_at(probe_times))
    half_motion = _largest_steps(probe_px)  # [2 * n_blocks]
    block_motion = 2.0 * half_motion.reshape(n_blocks, 2).max(axis=1)
    substeps = np.clip(np.ceil(block_motion / options.max_motion_px), options.min_substeps,
                       options.max_substeps).astype(int)
    if options.region_renders:
        substeps[block_motion <= options.max_motion_px] = 1
    window = _mesh_box(probe_px, (0, 0, ev_cam.width, ev_cam.height), margin=3 + int(np.ceil(half_motion.max())))
    view = MeshView(ev_cam, model.faces, model.uv, scene.texture_gray, scene.background_event, window)
    sim = EventSimulator(window, *thresholds, options.refractory_us)

    def sample(v: np.ndarray, px: np.ndarray, depth: np.ndarray, t: float, box: tuple[int, int, int, int]) -> None:
        gray = view.draw(px, depth, scene.shade(v, model.faces), box)
        sim.step(gray[..., 0], (t + offset_s) * 1e6, (box[0] - window[0], box[1] - window[1], box[2], box[3]))

    initial = posed_at(np.array([-offset_s]))[0]
    previous_px, initial_depth = ev_cam.project(initial)
    sample(initial, previous_px, initial_depth, -offset_s, window)
    n_events, n_renders, flushed_us = 0, 1, 0
    with Evt3Writer(raw_path, ev_cam.width, ev_cam.height) as writer:
        for k in range(n_blocks):
            times = -offset_s + (k + np.arange(1, substeps[k] + 1) / substeps[k]) * frame_s
            block_verts = posed_at(times)
            block_px, block_depth = ev_cam.project(block_verts)
            box = window  # of the renders before the block end
            if len(times) > 1 and options.region_renders:
                box = _clip_box(*_moving_bounds(model.faces, np.concatenate([previous_px[None], block_px]),
                                                options.max_motion_px), window, margin=1)
            if box is not None:
                for s in range(len(times) - 1):
                    sample(block_verts[s], block_px[s], block_depth[s], times[s], box)
                    n_renders += 1
            sample(block_verts[-1], block_px[-1], block_depth[-1], times[-1], window)
            n_renders += 1
            previous_px = block_px[-1]
            # every event so far is at or before floor(t), every later one at or after it
            end_us = int(np.floor((times[-1] + offset_s) * 1e6)) + 1
            noise = shot_noise(rng, flushed_us, end_us, ev_cam.width, ev_cam.height, options.noise_rate_hz)
            events = sort_events(np.concatenate([sim.take(), noise]))
            writer.write(events)
            n_events += len(events)
            flushed_us = end_us
    render_hz = float(substeps.mean() * fps)
    return Truth(lm_rgb.astype(np.float32), lm_ev.astype(np.float32), au.astype(np.float32),
                 pose.astype(np.float32), rgb_times, window, n_events, render_hz, n_renders)
