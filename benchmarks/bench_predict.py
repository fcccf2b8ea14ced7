"""Throughput of ``facemorphic predict``: frames per second of the ResNet-18 + LSTM at the default input size
(64), on one CPU core, beside the recording's own frame rate (30 fps) -- a ratio above 1 keeps up live.

By default the run is trained here for one epoch on toy shards (the weights do not change the arithmetic);
``--run results/runs/resnet18_lstm_events/seed-0`` times a run of the pipeline instead. The recording is the
real 1.25 s Prophesee EVT 3.0 file of ../shared/data (``--raw`` for another). Prints JSON lines::

    .venv/bin/python benchmarks/bench_predict.py [--run RUN_DIR] [--raw REC.raw]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
import torch

from facemorphic import ACTION_UNITS
from facemorphic.events.options import EventsOptions
from facemorphic.predict.options import PredictOptions
from facemorphic.predict.recording import predict_recording
from facemorphic.predict.trained import load_trained_run
from facemorphic.shards.io import SHARD_FORMAT, write_sample
from facemorphic.shards.toy import toy_sample
from facemorphic.training import RunConfig, train_run

RAW = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "events" / \
    "evt3_1280x720_triggers_event_camera_codecs.raw"
SIZE, CLIP, FPS = 64, 30, 30.0


def toy_run(root: Path) -> Path:
    """A ResNet-18 + LSTM run trained for one epoch on toy shards under ``root``."""
    rng = np.random.default_rng(0)
    path = root / "shards" / "train" / "shard-0.h5"
    path.parent.mkdir(parents=True)
    with h5py.File(path, "w") as file:
        file.attrs.update(format=SHARD_FORMAT, split="train", size=SIZE, crop="center", modalities="events")
        for i in range(4):
            write_sample(file, f"r{i}", dict(recording_id=f"r{i}", user="u", au=ACTION_UNITS[i], label=i,
                                             split="train", n_frames=CLIP, event_representation="periodic_frame",
                                             event_subwindows=1, event_channels_per_subwindow=3),
                         toy_sample(i, CLIP, SIZE, rng))
    train_run(RunConfig(shards_dir=str(root / "shards"), out_dir=str(root / "run"), model="resnet18_lstm",
                        modality="events", epochs=1, batch_size=4, clip_length=CLIP, num_workers=0,
                        predict_splits=["train"]))
    return root / "run"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, default=None, help="a trained run folder (default: a toy run)")
    parser.add_argument("--raw", type=Path, default=RAW, help="the recording (default: the real EVT 3.0 file)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        run = load_trained_run(args.run or toy_run(Path(tmp)))
        options = PredictOptions(fps=FPS)
        predict_recording(run, args.raw, options, EventsOptions())  # warm-up (numba kernels)
        started = time.perf_counter()
        result = predict_recording(run, args.raw, options, EventsOptions())
        seconds = time.perf_counter() - started
    frames_per_s = len(result.table) / seconds
    source = "pipeline_run" if args.run else "toy_run"
    name = f"predict_{run.model_name}_{run.size}px_{source}_frames_per_s"
    for line in ({"name": name, "value": round(frames_per_s, 2), "unit": "frames/s"},
                 {"name": "recording_frame_rate", "value": FPS, "unit": "frames/s"},
                 {"name": "predict_over_real_time_ratio", "value": round(frames_per_s / FPS, 3), "unit": "x"}):
        print(json.dumps(line))


if __name__ == "__main__":
    main()
