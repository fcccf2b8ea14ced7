"""One synthetic recording: the RGB video, the event stream and their ground truth.

The RGB camera samples the subject's :class:`~facemorphic.synthetic.motion.Script` at 30 fps; the
event sensor samples the same motion from its own viewpoint with ESIM's adaptive sampling applied per
region: the whole window of the sensor the head can reach during the recording (the rest of the sensor
sees the static room and only produces background noise) once per frame period, and the region that
moves faster than one render per frame period allows 10 to 24 times per frame period (300-720 Hz, more
where the face moves faster). :class:`~facemorphic.synthetic.esim.EventSimulator` turns the log
intensity into events, each pixel interpolating between its own samples. The event clock starts at 0 at the
first event render; RGB time zero is at ``event_offset_us`` on that clock, so the event stream starts a
little before the video, as when a person starts the two recorders by hand.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..fileio import atomic_path
from ..options import defaults
from .esim import EventSimulator, log_intensity, shot_noise, sort_events
from .face import FaceModel, posed_vertices
from .motion import Script
from .options import SynthOptions
from .render import render
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
    # min_substeps per frame period (the generator before per-region sampling; the benchmark's reference)
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


def _to_uint8(image: np.ndarray) -> np.ndarray:
    return (np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


class _RgbWriter:
    """Writes frames as an H.264 MP4 (PyAV, one thread, deterministic) or a folder of timestamped JPEGs."""

    def __init__(self, path: Path, fmt: str, fps: int, size: tuple[int, int], wall_start: dt.datetime):
        self.path, self.fmt, self.fps, self.size, self.wall_start = path, fmt, fps, size, wall_start
        self.k = 0

    def __enter__(self):
        if self.fmt == "mp4":
            import av

            self._atomic = atomic_path(self.path)
            tmp = self._atomic.__enter__()
            self._container = av.open(str(tmp), mode="w", format="mp4")
            stream = self._container.add_stream("libx264", rate=self.fps)
            stream.width, stream.height = self.size
            stream.pix_fmt = "yuv420p"
            stream.codec_context.thread_count = 1
            stream.options = {"crf": "18", "preset": "veryfast", "threads": "1"}
            self._stream = stream
        else:
            self.path.mkdir(parents=True, exist_ok=True)
        return self

    def write(self, frame: np.ndarray) -> None:
        if self.fmt == "mp4":
            import av

            vf = av.VideoFrame.from_ndarray(frame, format="rgb24")
            vf.pts = self.k
            for packet in self._stream.encode(vf):
                self._container.mux(packet)
        else:
            from PIL import Image

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


def _mesh_box(px: np.ndarray, window: tuple[int, int, int, int], margin: int = 1):
    """The part (x0, y0, w, h) of ``window`` inside the bounding box of points ``px`` [..., 2] plus
    ``margin`` pixels, or None when they do not meet."""
    wx, wy, ww, wh = window
    pts = px.reshape(-1, 2)
    x0 = max(int(np.floor(pts[:, 0].min())) - margin, wx)
    y0 = max(int(np.floor(pts[:, 1].min())) - margin, wy)
    x1 = min(int(np.ceil(pts[:, 0].max())) + margin, wx + ww - 1)
    y1 = min(int(np.ceil(pts[:, 1].max())) + margin, wy + wh - 1)
    if x1 < x0 or y1 < y0:
        return None
    return x0, y0, x1 - x0 + 1, y1 - y0 + 1


def _moving_vertices(faces: np.ndarray, path_px: np.ndarray, max_motion_px: float) -> np.ndarray:
    """Vertices whose rendering can change faster than one render per block allows.

    ``path_px`` [S, N, 2] are the vertices' sensor positions at the block's start and its renders.
    A vertex is fast when its path is longer than ``max_motion_px``; a triangle's pixels also depend
    on its vertices' shades, which follow the normals of their neighbours, so every vertex of a
    triangle that shares a vertex with a triangle touching a fast vertex is returned (two rings).
    """
    path = np.linalg.norm(np.diff(path_px, axis=0), axis=-1).sum(axis=0)
    marked = path > max_motion_px
    for _ in range(2):
        touching = marked[faces].any(axis=1)
        marked = np.zeros_like(marked)
        marked[faces[touching]] = True
    return marked


def generate_recording(model: FaceModel, scene: Scene, identity: np.ndarray, script: Script,
                       thresholds: tuple[np.ndarray, np.ndarray], rng: np.random.Generator,
                       rgb_path: Path, raw_path: Path, event_offset_us: int, options: EventOptions,
                       fps: int = 30, rgb_format: str = "mp4",
                       wall_start: dt.datetime | None = None) -> Truth:
    """Render and write one recording (RGB video at ``rgb_path``, EVT 3.0 at ``raw_path``); return its truth."""
    from ..events.evt3_writer import Evt3Writer

    n_frames = int(round(script.duration * fps))
    rgb_times = np.arange(n_frames) / fps
    au, pose, translation = script.evaluate(rgb_times)
    verts = posed_vertices(model, identity, au, pose, translation)
    landmarks3d = model.landmarks(verts)
    lm_rgb, _ = scene.rgb_camera.project(landmarks3d)
    lm_ev, _ = scene.event_camera.project(landmarks3d)

    # Each RGB frame renders only the mesh's bounding box over the background, converted once to 8 bits:
    # the same pixels as rendering the whole frame.
    rgb_cam = scene.rgb_camera
    background_u8 = _to_uint8(scene.background_rgb)
    full_rgb = (0, 0, rgb_cam.width, rgb_cam.height)
    wall_start = wall_start or dt.datetime(2024, 1, 1, 10, 0, 0)
    with _RgbWriter(rgb_path, rgb_format, fps, (rgb_cam.width, rgb_cam.height), wall_start) as out:
        for v in verts:
            frame = background_u8.copy()
            box = _mesh_box(rgb_cam.project(v)[0], full_rgb)
            if box is not None:
                x0, y0, w, h = box
                shade = scene.shade(v, model.faces)
                crop = render(rgb_cam, v, model.faces, model.uv, shade, scene.texture_rgb, scene.background_rgb,
                              window=box)
                frame[y0:y0 + h, x0:x0 + w] = _to_uint8(crop)
            out.write(frame)

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
    probe_px, _ = ev_cam.project(posed_vertices(model, identity, *script.evaluate(probe_times)))
    half_motion = np.linalg.norm(np.diff(probe_px, axis=0), axis=-1).max(axis=-1)  # [2 * n_blocks]
    block_motion = 2.0 * half_motion.reshape(n_blocks, 2).max(axis=1)
    substeps = np.clip(np.ceil(block_motion / options.max_motion_px), options.min_substeps,
                       options.max_substeps).astype(int)
    if options.region_renders:
        substeps[block_motion <= options.max_motion_px] = 1
    margin = 3 + int(np.ceil(half_motion.max()))
    lo, hi = probe_px.reshape(-1, 2).min(0), probe_px.reshape(-1, 2).max(0)
    x0, y0 = max(int(np.floor(lo[0])) - margin, 0), max(int(np.floor(lo[1])) - margin, 0)
    x1 = min(int(np.ceil(hi[0])) + margin, ev_cam.width - 1)
    y1 = min(int(np.ceil(hi[1])) + margin, ev_cam.height - 1)
    window = (x0, y0, x1 - x0 + 1, y1 - y0 + 1)
    sim = EventSimulator(window, *thresholds, options.refractory_us)

    def sample(v: np.ndarray, t: float, box: tuple[int, int, int, int]) -> None:
        shade = scene.shade(v, model.faces)
        gray = render(ev_cam, v, model.faces, model.uv, shade, scene.texture_gray, scene.background_event,
                      window=box)
        sim.step(log_intensity(gray[..., 0]), (t + offset_s) * 1e6,
                 (box[0] - window[0], box[1] - window[1], box[2], box[3]))

    initial = posed_vertices(model, identity, *script.evaluate(np.array([-offset_s])))[0]
    sample(initial, -offset_s, window)
    previous_px = ev_cam.project(initial)[0]
    n_events, n_renders, flushed_us = 0, 1, 0
    with Evt3Writer(raw_path, ev_cam.width, ev_cam.height) as writer:
        for k in range(n_blocks):
            times = -offset_s + (k + np.arange(1, substeps[k] + 1) / substeps[k]) * frame_s
            block_verts = posed_vertices(model, identity, *script.evaluate(times))
            block_px = ev_cam.project(block_verts)[0]
            if len(times) > 1 and not options.region_renders:
                for t, v in zip(times[:-1], block_verts[:-1]):
                    sample(v, t, window)
                    n_renders += 1
            elif len(times) > 1:
                path_px = np.concatenate([previous_px[None], block_px])
                moving = _moving_vertices(model.faces, path_px, options.max_motion_px)
                box = _mesh_box(path_px[:, moving], window) if moving.any() else None
                if box is not None:
                    for t, v in zip(times[:-1], block_verts[:-1]):
                        sample(v, t, box)
                        n_renders += 1
            sample(block_verts[-1], times[-1], window)
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
