"""Benchmark of the ingest stage's probes, printed as JSON lines.

* RGB: probing an MP4 by demuxing only (what ingest does) against decoding every frame with PyAV to
  count frames and read their times (what a script usually does), on the same file, in the same run.
* RAW: reading the first event time from the start of the file (what ingest does) against decoding the
  whole file with the project's reader.

Usage: python benchmarks/bench_ingest.py [--frames 900] [--events 2000000]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from benchtools import best_of, emit  # noqa: E402
from media import random_events, write_mp4  # noqa: E402

from facemorphic.events.evt3_writer import write_evt3  # noqa: E402
from facemorphic.events.raw import probe_raw, read_events  # noqa: E402
from facemorphic.video.probe import probe_rgb  # noqa: E402


def decode_all_frames(path: Path) -> np.ndarray:
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return np.array([frame.time for frame in container.decode(stream)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=900, help="frames of the test MP4 (640x480, 30 fps)")
    parser.add_argument("--events", type=int, default=2_000_000, help="events of the test RAW")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        video = write_mp4(Path(tmp) / "frames_1.mp4", n_frames=args.frames, width=640, height=480)
        assert probe_rgb(video).n_frames == len(decode_all_frames(video)) == args.frames
        probe_s = best_of(lambda: probe_rgb(video))
        decode_s = best_of(lambda: decode_all_frames(video), repeats=1)
        emit("ingest.rgb_probe_demux", args.frames / probe_s, "frames/s")
        emit("ingest.rgb_probe_full_decode_baseline", args.frames / decode_s, "frames/s")
        emit("ingest.rgb_probe_speedup", decode_s / probe_s, "x")

        raw = Path(tmp) / "event_1.raw"
        write_evt3(raw, random_events(args.events, 1_000_000, 10_000_000, seed=0), 1280, 720)
        probe_raw(raw)  # numba compilation outside the timing
        read_events(raw)
        probe_s = best_of(lambda: probe_raw(raw))
        full_s = best_of(lambda: read_events(raw), repeats=1)
        emit("ingest.raw_probe_first_event", 1e3 * probe_s, "ms")
        emit("ingest.raw_full_decode_baseline", 1e3 * full_s, "ms")
        emit("ingest.raw_probe_speedup", full_s / probe_s, "x")


if __name__ == "__main__":
    main()
