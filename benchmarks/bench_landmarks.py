"""Landmark throughput on 640x480 video, detection and tracking included; prints JSON lines.

* dlib: frames/s of the stage's tracking path (:func:`facemorphic.landmarks.landmark_stream`, HOG on the
  first frame and after a loss, HOG in a small region around the previous face otherwise) against the
  baseline measured in the same run, full-frame HOG detection on every frame (both include decoding).
  The process is pinned to ``--cores`` CPU cores (default 1: the issue's goal is >= 30 frames/s on one core).
* face_alignment: frames/s of the batched landmark network (:meth:`FanBackend.fit`, stacked crops) against
  the package's per-image path (``get_landmarks_from_image`` with given boxes) on the same frames, at a
  small batch on CPU; on CUDA, a sweep of batch sizes 1..64 plus the whole tracking path. Without the real
  weights in the torch hub cache, randomly initialised weight files of the same architectures are placed
  in a temporary TORCH_HOME (throughput does not depend on the weight values; the JSON says which).

Usage: ``.venv/bin/python benchmarks/bench_landmarks.py [--frames 300] [--cores 1] [--skip-fan]``
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def emit(name: str, value: float, unit: str, **extra) -> None:
    print(json.dumps({"name": name, "value": round(float(value), 3), "unit": unit, **extra}), flush=True)


def moving_face_video(path: Path, n_frames: int) -> None:
    """The astronaut's face (300x300) drifting and bobbing over a 640x480 textured background."""
    import skimage.data

    from facemorphic.video import write_mp4

    face = skimage.data.astronaut()[20:320, 80:380]
    rng = np.random.default_rng(0)
    background = rng.integers(40, 120, (480, 640, 3), dtype=np.uint8)

    def frames():
        for k in range(n_frames):
            frame = background.copy()
            x = int(170 + 120 * np.sin(2 * np.pi * k / 150))
            y = int(90 + 40 * np.sin(2 * np.pi * k / 90))
            frame[y:y + 300, x:x + 300] = face
            yield frame

    write_mp4(path, frames())


def bench_dlib(video: Path, n_frames: int) -> None:
    from facemorphic.landmarks import TrackOptions, landmark_stream
    from facemorphic.landmarks.dlib_backend import DlibBackend
    from facemorphic.video import open_rgb

    backend = DlibBackend()
    start = time.perf_counter()
    detected = 0
    for batch in open_rgb(video).batches(32):
        for image in batch.images:
            found = backend.detect([image])[0]
            if len(found):
                backend.fit([image], found[:1, :4])
                detected += 1
    baseline = n_frames / (time.perf_counter() - start)
    emit("dlib_detect_every_frame_fps", baseline, "frames/s", frames=n_frames, with_face=detected)

    start = time.perf_counter()
    track, _ = landmark_stream(backend, video, TrackOptions(lanes=1, progress=False))
    tracked = n_frames / (time.perf_counter() - start)
    emit("dlib_tracking_fps", tracked, "frames/s", frames=n_frames, with_face=int(track.valid.sum()),
         detections=int(track.detected.sum()), goal=">= 30 on one core")
    emit("dlib_tracking_vs_detect_every_frame", tracked / baseline, "ratio")


def ensure_fan_weights(landmarks_type: str, scratch: Path) -> str:
    """``real`` when the cache has the weights, else place random ones in a TORCH_HOME under ``scratch``."""
    from facemorphic.landmarks.fan import fan_weight_files, missing_fan_weights

    if not missing_fan_weights(landmarks_type):
        return "real"
    import torch
    from face_alignment.detection.sfd.net_s3fd import s3fd
    from face_alignment.models import FAN, ResNetDepth

    os.environ["TORCH_HOME"] = str(scratch / "torch_home")
    for path, _ in fan_weight_files(landmarks_type):
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.name.startswith("depth"):
            torch.save({"state_dict": ResNetDepth().state_dict()}, path)
        elif path.name.startswith("s3fd"):
            torch.save(s3fd().state_dict(), path)
        else:
            torch.save(FAN(4).state_dict(), path)
    return "random"


def bench_fan(video: Path, cpu_frames: int) -> None:
    import torch

    from facemorphic.landmarks import TrackOptions, landmark_stream
    from facemorphic.landmarks.fan import FanBackend
    from facemorphic.video import open_rgb

    weights = ensure_fan_weights("2.5D", video.parent)
    cuda = torch.cuda.is_available()
    device = "cuda" if cuda else "cpu"
    images = list(next(open_rgb(video).batches(64)).images)
    boxes = np.array([[230.0, 130, 420, 350]] * len(images))  # where the face is on the first frames
    common = dict(weights=weights, device=device, landmarks_type="2.5D", flip=True)

    batch_sizes = [1, 2, 4, 8, 16, 32, 64] if cuda else [2]
    n = len(images) if cuda else cpu_frames
    backend = FanBackend(landmarks_type="2.5D", device=device, batch_size=batch_sizes[0], flip=True)
    backend.fit(images[:1], boxes[:1])  # warm-up (cuDNN autotune, lazy init)
    backend.fa.get_landmarks_from_image(images[0], detected_faces=[boxes[0]])  # warm-up (its numba JIT)

    start = time.perf_counter()
    for image, box in zip(images[:n], boxes[:n]):
        backend.fa.get_landmarks_from_image(image, detected_faces=[box])
    if cuda:
        torch.cuda.synchronize()
    per_image = n / (time.perf_counter() - start)
    emit("fan_package_per_image_fps", per_image, "frames/s", frames=n, **common)
    best = 0.0
    for batch_size in batch_sizes:
        backend.batch_size = batch_size
        backend.fit(images[:batch_size], boxes[:batch_size])  # warm-up at this shape
        start = time.perf_counter()
        backend.fit(images[:n], boxes[:n])
        if cuda:
            torch.cuda.synchronize()
        fps = n / (time.perf_counter() - start)
        best = max(best, fps)
        emit("fan_batched_landmarks_fps", fps, "frames/s", batch_size=batch_size, frames=n, **common)
    emit("fan_batched_vs_package_per_image", best / per_image, "ratio", **common)

    track_frames = len(images) if cuda else cpu_frames
    clip = video.with_name("fan_clip.mp4")
    from facemorphic.video import write_mp4

    write_mp4(clip, images[:track_frames])
    backend.batch_size = batch_sizes[-1]
    start = time.perf_counter()
    landmark_stream(backend, clip, TrackOptions(lanes=batch_sizes[-1], lane_frames=8, progress=False))
    if cuda:
        torch.cuda.synchronize()
    emit("fan_tracking_path_fps", track_frames / (time.perf_counter() - start), "frames/s",
         batch_size=batch_sizes[-1], frames=track_frames,
         note="random weights: detections and tracking losses are not those of a real face" if weights == "random"
         else "", **common)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=300, help="frames of the dlib test video")
    parser.add_argument("--fan-cpu-frames", type=int, default=4, help="frames for face_alignment on CPU")
    parser.add_argument("--cores", type=int, default=1, help="pin the process to this many CPU cores")
    parser.add_argument("--skip-fan", action="store_true")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[: args.cores])
        import torch

        torch.set_num_threads(args.cores)
    with tempfile.TemporaryDirectory() as tmp:
        video = Path(tmp) / "face_640x480.mp4"
        moving_face_video(video, args.frames)
        bench_dlib(video, args.frames)
        if not args.skip_fan:
            bench_fan(video, args.fan_cpu_frames)
    return 0


if __name__ == "__main__":
    sys.exit(main())
