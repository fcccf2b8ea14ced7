"""Benchmark of the synthetic dataset generator: seconds per recording and generation time / recording length.

Generates one user with a handful of recordings of each kind (AU, free, reading) at the default settings
(adaptive event renders, 300-720 Hz), and, as the baseline in the same run, the same recordings with a
fixed 720 Hz event render rate (every frame period split into the maximum number of renders, ESIM
without adaptive sampling). Prints JSON lines ``{"name", "value", "unit"}``.

    .venv/bin/python benchmarks/bench_synthetic.py [--aus 1 12 26 43 51 55] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from facemorphic.synthetic.dataset import UserOptions, generate_user, plan_recordings
from facemorphic.synthetic.face import face_model
from facemorphic.synthetic.recording import EventOptions


def emit(name: str, value: float, unit: str) -> None:
    print(json.dumps({"name": name, "value": round(float(value), 4), "unit": unit}), flush=True)


def timed_user(root: Path, options: UserOptions, seed: int) -> float:
    start = time.perf_counter()
    generate_user(root, "bench", 0, seed, options, progress=False)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--aus", type=int, nargs="+", default=[1, 12, 26, 43, 51, 55])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    face_model()
    # warm numba's caches and the codec outside the timings
    with tempfile.TemporaryDirectory() as tmp:
        generate_user(tmp, "warm", 0, args.seed, UserOptions(repetitions=1, free=0, reading=0, aus=(12,),
                                                             au_duration_s=0.3), progress=False)

    options = UserOptions(repetitions=1, free=1, reading=1, aus=tuple(args.aus))
    n_rec = len(plan_recordings(options))
    length_s = (len(args.aus) * options.au_duration_s + options.free_duration_s + options.reading_duration_s)
    fixed = EventOptions(min_substeps=options.events.max_substeps, max_substeps=options.events.max_substeps)
    with tempfile.TemporaryDirectory() as tmp:
        adaptive_s = timed_user(Path(tmp) / "adaptive", options, args.seed)
        raw_bytes = sum(p.stat().st_size for p in (Path(tmp) / "adaptive").rglob("*.raw"))
        baseline_s = timed_user(Path(tmp) / "fixed", UserOptions(repetitions=1, free=1, reading=1,
                                                                 aus=tuple(args.aus), events=fixed), args.seed)

    emit("synth_recordings", n_rec, "recordings")
    emit("synth_recorded_length", length_s, "s")
    emit("synth_seconds_per_recording", adaptive_s / n_rec, "s/recording")
    emit("synth_generation_over_length", adaptive_s / length_s, "ratio")
    emit("synth_raw_megabytes_per_recorded_second", raw_bytes / 1e6 / length_s, "MB/s")
    emit("baseline_fixed720hz_seconds_per_recording", baseline_s / n_rec, "s/recording")
    emit("baseline_fixed720hz_generation_over_length", baseline_s / length_s, "ratio")
    emit("synth_speedup_vs_fixed720hz", baseline_s / adaptive_s, "ratio")
    # the default dataset: 24 AUs x 2 + 1 free + 4 reading per user
    default = UserOptions()
    per_user_s = (2 * 24 * default.au_duration_s + default.free_duration_s + 4 * default.reading_duration_s)
    emit("synth_estimated_minutes_per_default_user", per_user_s * adaptive_s / length_s / 60.0, "min")


if __name__ == "__main__":
    main()
