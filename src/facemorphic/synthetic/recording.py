"""One synthetic recording: the RGB video, the event stream and their ground truth.

The RGB camera samples the subject's :class:`~facemorphic.synthetic.motion.Script` at 30 fps; the
event sensor samples the same motion 10 to 24 times per frame period (300-720 Hz, more where the face
moves faster: ESIM's adaptive sampling) from its own viewpoint, renders only the window of the sensor
the head can reach during the recording (the rest of the sensor sees the static room and only produces
background noise), and turns the log intensity into events with :class:`~facemorphic.synthetic.esim.EventSimulator`. The event clock starts at 0 at the
first event render; RGB time zero is at ``event_offset_us`` on that clock, so the event stream starts a
little before the video, as when a person starts the two recorders by hand.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..fileio import atomic_path
from .esim import EventSimulator, log_intensity, shot_noise, sort_events
from .face import FaceModel, posed_vertices
from .motion import Script
from .render import render
from .scene import Scene


@dataclass(frozen=True)
class EventOptions:
    """Event simulation parameters (see :mod:`facemorphic.synthetic.esim`)."""

    min_substeps: int = 10  # event renders per RGB frame period at least (30 fps x 10 = 300 Hz) ...
    max_substeps: int = 24  # ... and at most (720 Hz)
    max_motion_px: float = 0.5  # largest image motion of any vertex between two renders, sensor pixels
    contrast: float = 0.2  # mean ON/OFF contrast threshold (log units)
    contrast_sigma: float = 0.03  # per-pixel spread of the thresholds
    refractory_us: float = 500.0
    noise_rate_hz: float = 0.01  # background events per pixel per second


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
    event_render_hz: float  # mean rate of event renders


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

    wall_start = wall_start or dt.datetime(2024, 1, 1, 10, 0, 0)
    with _RgbWriter(rgb_path, rgb_format, fps, (scene.rgb_camera.width, scene.rgb_camera.height), wall_start) as out:
        for v in verts:
            shade = scene.shade(v, model.faces)
            img = render(scene.rgb_camera, v, model.faces, model.uv, shade, scene.texture_rgb, scene.background_rgb)
            out.write(_to_uint8(img))

    # Event renders, from event time 0 (RGB time -offset) to the end of the last RGB frame's interval, in
    # blocks of one frame period. Each block is split into as many renders as its fastest-moving vertex
    # needs to move at most ``max_motion_px`` sensor pixels per render (ESIM's adaptive sampling), within
    # [min_substeps, max_substeps]. The render window is the sensor region the head reaches at any time.
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
    margin = 3 + int(np.ceil(half_motion.max()))
    lo, hi = probe_px.reshape(-1, 2).min(0), probe_px.reshape(-1, 2).max(0)
    x0, y0 = max(int(np.floor(lo[0])) - margin, 0), max(int(np.floor(lo[1])) - margin, 0)
    x1 = min(int(np.ceil(hi[0])) + margin, ev_cam.width - 1)
    y1 = min(int(np.ceil(hi[1])) + margin, ev_cam.height - 1)
    window = (x0, y0, x1 - x0 + 1, y1 - y0 + 1)
    sim = EventSimulator(window, *thresholds, options.refractory_us, frame_s / options.min_substeps * 1e6)
    n_events = 0
    flushed_us = 0
    with Evt3Writer(raw_path, ev_cam.width, ev_cam.height) as writer:
        for k in range(n_blocks):
            times = -offset_s + (k + np.arange(1, substeps[k] + 1) / substeps[k]) * frame_s
            if k == 0:
                times = np.concatenate([[-offset_s], times])
            for t, v in zip(times, posed_vertices(model, identity, *script.evaluate(times))):
                shade = scene.shade(v, model.faces)
                gray = render(ev_cam, v, model.faces, model.uv, shade, scene.texture_gray, scene.background_event,
                              window=window)
                sim.step(log_intensity(gray[..., 0]), (t + offset_s) * 1e6)
            # every event so far is at or before floor(t), every later one at or after it
            end_us = int(np.floor((times[-1] + offset_s) * 1e6)) + 1
            noise = shot_noise(rng, flushed_us, end_us, ev_cam.width, ev_cam.height, options.noise_rate_hz)
            events = sort_events(np.concatenate([sim.take(), noise]))
            writer.write(events)
            n_events += len(events)
            flushed_us = end_us
    render_hz = float(substeps.mean() * fps)
    return Truth(lm_rgb.astype(np.float32), lm_ev.astype(np.float32), au.astype(np.float32),
                 pose.astype(np.float32), rgb_times, window, n_events, render_hz)
