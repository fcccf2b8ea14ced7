"""Benchmark of the shards stage's frame preparation, printed as JSON lines.

* Resize: sensor-size event frames (3 channel planes, 1280x720, centre crop 720x720) and decoded RGB
  frames (640x480, channels last in memory, centre crop 480x480) to the model input size with the
  stage's integer area kernel, against ``torch.nn.functional.interpolate(mode="area")`` on a float32
  copy of the crop (the stage's previous resize, same bytes out), on the same frames in the same run.
* RGB recording: decoding an MP4 and resizing every frame (``read_rgb_frames``, what the stage does
  per recording), in frames/s; its baseline is the same decode with the torch resize.

Run it with one thread (the Snakemake job's budget)::

    OMP_NUM_THREADS=1 NUMBA_NUM_THREADS=1 .venv/bin/python benchmarks/bench_shards.py [--frames 45] [--size 64]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from benchtools import best_of, emit  # noqa: E402
from media import write_mp4  # noqa: E402

import facemorphic.shards.frames as shard_frames  # noqa: E402


def torch_area_resize(frames: np.ndarray, size: int, crop: str = "center") -> np.ndarray:
    """The previous resize: contiguous float32 copy of the crop, area interpolation, rounded."""
    top, bottom, left, right = shard_frames.crop_box(frames.shape[2], frames.shape[3], crop)
    block = torch.from_numpy(np.ascontiguousarray(frames[:, :, top:bottom, left:right]))
    resized = F.interpolate(block.float(), size=(size, size), mode="area")
    return resized.round_().clamp_(0, 255).to(torch.uint8).numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=45, help="frames per block (a 1.5 s recording)")
    parser.add_argument("--size", type=int, default=64, help="model input size (config shards.size)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    inputs = {
        "events": rng.integers(0, 256, (args.frames, 3, 720, 1280), dtype=np.uint8),
        "rgb": rng.integers(0, 256, (args.frames, 480, 640, 3), dtype=np.uint8).transpose(0, 3, 1, 2),
    }
    for name, frames in inputs.items():
        if not np.array_equal(shard_frames.resize_frames(frames, args.size), torch_area_resize(frames, args.size)):
            raise SystemExit(f"{name}: the kernel and torch's area resize differ")
        kernel_s = best_of(lambda: shard_frames.resize_frames(frames, args.size), warm_up=True)
        torch_s = best_of(lambda: torch_area_resize(frames, args.size), warm_up=True)
        emit(f"shards_resize_{name}_frames_per_s", args.frames / kernel_s, "frames/s")
        emit(f"baseline_torch_area_resize_{name}_frames_per_s", args.frames / torch_s, "frames/s")
        emit(f"shards_resize_{name}_speedup", torch_s / kernel_s, "x")

    with tempfile.TemporaryDirectory() as tmp:
        video = write_mp4(Path(tmp) / "rgb.mp4", args.frames, width=640, height=480)
        stage_s = best_of(lambda: shard_frames.read_rgb_frames(video, args.size), warm_up=True)
        kernel_resize = shard_frames.resize_frames
        shard_frames.resize_frames = torch_area_resize  # the same decode, the previous resize
        try:
            baseline_s = best_of(lambda: shard_frames.read_rgb_frames(video, args.size), warm_up=True)
        finally:
            shard_frames.resize_frames = kernel_resize
    emit("shards_rgb_recording_frames_per_s", args.frames / stage_s, "frames/s")
    emit("baseline_rgb_recording_torch_resize_frames_per_s", args.frames / baseline_s, "frames/s")
    emit("shards_rgb_recording_speedup", baseline_s / stage_s, "x")


if __name__ == "__main__":
    main()
