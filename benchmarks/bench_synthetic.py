"""Benchmark of the synthetic dataset generator: real-time factor per core (recorded length / generation time).

Generates one user with a handful of recordings of each kind (AU, free, reading) at the default settings
(per-region event renders driven by the motion: ``min_substeps`` 1), and, as baselines in the same run,
the same recordings

* with the previous default ``min_substeps`` 10: every frame period where something moves faster than
  one render allows gets at least 10 renders (300 Hz), however slowly it moves;
* with every event render covering the whole simulated window at 300-720 Hz (the generator before
  per-region sampling).

Both baselines run the current kernels (the previous ones are gone), so the ratios measure the sampling
alone; the kernels' own gain shows against an older checkout's ``synth_realtime_factor_*``. Run it with
one thread (the Snakemake job's budget)::

    NUMBA_NUM_THREADS=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 \\
        .venv/bin/python benchmarks/bench_synthetic.py [--aus 1 12 26 43 51 55] [--seed 0]

With ``--default-user`` it also generates one user at the default settings (every AU twice, the free and
reading recordings: 87 s recorded) and prints the real-time factor of that user and of each kind of
recording in it (facial AUs, head AUs 51-56, reading, free), from the generator's per-recording log:
where the generation time of the default run goes.

Prints JSON lines ``{"name", "value", "unit"}``. Both wall and process CPU time are reported: on a
shared machine the CPU time is the steadier measure of the cost per core.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import logging
import tempfile
import time
from pathlib import Path

from benchtools import emit

from facemorphic.synthetic.dataset import UserOptions, generate_user, plan_recordings
from facemorphic.synthetic.face import face_model


def timed_user(root: Path, options: UserOptions, seed: int) -> tuple[float, float]:
    """Wall and CPU seconds to generate one user."""
    wall, cpu = time.perf_counter(), time.process_time()
    generate_user(root, "bench", 0, seed, options, progress=False)
    return time.perf_counter() - wall, time.process_time() - cpu


class _RecordingTimes(logging.Handler):
    """Collects the generator's per-recording log lines: (recording id, RGB frames, seconds)."""

    def __init__(self):
        super().__init__(logging.INFO)
        self.rows: list[tuple[str, int, float]] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.msg.startswith("%s: %d frames"):
            rid, frames, _, _, seconds, _ = record.args
            self.rows.append((rid, frames, seconds))


def recording_kind(recording_id: str) -> str:
    """facial_au, head_au (AUs 51-56), reading or free, from ``{user}_AU_{n}_{rep}`` / ``_AU_READING_`` ..."""
    folder = recording_id.rsplit("_", 2)[1]
    if folder.isdigit():
        return "head_au" if 51 <= int(folder) <= 56 else "facial_au"
    return folder.lower()


def default_user(seed: int, fps: int) -> None:
    """Real-time factors of one default user, whole and by kind of recording."""
    times = _RecordingTimes()
    logger = logging.getLogger("facemorphic.synthetic.dataset")
    logger.addHandler(times)
    logger.setLevel(logging.INFO)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            wall_s, cpu_s = timed_user(Path(tmp), UserOptions(), seed)
    finally:
        logger.removeHandler(times)
    if not times.rows:
        raise SystemExit("no per-recording line in the generator's log: its format changed, update _RecordingTimes")
    by_kind = collections.defaultdict(lambda: [0.0, 0.0])
    for rid, frames, seconds in times.rows:
        by_kind[recording_kind(rid)][0] += frames / fps
        by_kind[recording_kind(rid)][1] += seconds
    length_s = sum(recorded for recorded, _ in by_kind.values())
    emit("synth_default_user_recorded_length", length_s, "s")
    emit("synth_default_user_realtime_factor_wall", length_s / wall_s, "x real time")
    emit("synth_default_user_realtime_factor_cpu", length_s / cpu_s, "x real time")
    for kind, (recorded, seconds) in sorted(by_kind.items()):
        emit(f"synth_default_user_{kind}_realtime_factor_wall", recorded / seconds, "x real time")
        emit(f"synth_default_user_{kind}_share_of_generation", seconds / wall_s, "fraction")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--aus", type=int, nargs="+", default=[1, 12, 26, 43, 51, 55])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--default-user", action="store_true",
                        help="also generate one user at the default settings and break its time down by kind")
    args = parser.parse_args()

    face_model()
    options = UserOptions(repetitions=1, free=1, reading=1, aus=tuple(args.aus), au_duration_s=1.5)
    baselines = {
        "min_substeps_10": dataclasses.replace(options, events=dataclasses.replace(options.events, min_substeps=10)),
        "whole_window": dataclasses.replace(options, events=dataclasses.replace(options.events, min_substeps=10,
                                                                                region_renders=False)),
    }
    # warm numba's caches and the codec outside the timings
    with tempfile.TemporaryDirectory() as tmp:
        for warm in (options, *baselines.values()):
            generate_user(tmp, "warm", 0, args.seed, dataclasses.replace(warm, free=0, reading=0, aus=(12,),
                                                                         au_duration_s=0.3), progress=False)

    n_rec = len(plan_recordings(options))
    length_s = len(args.aus) * options.au_duration_s + options.free_duration_s + options.reading_duration_s
    with tempfile.TemporaryDirectory() as tmp:
        wall_s, cpu_s = timed_user(Path(tmp) / "default", options, args.seed)
        raw_bytes = sum(p.stat().st_size for p in (Path(tmp) / "default").rglob("*.raw"))
        base = {name: timed_user(Path(tmp) / name, baseline, args.seed) for name, baseline in baselines.items()}

    emit("synth_recordings", n_rec, "recordings")
    emit("synth_recorded_length", length_s, "s")
    emit("synth_seconds_per_recording", wall_s / n_rec, "s/recording")
    emit("synth_realtime_factor_wall", length_s / wall_s, "x real time")
    emit("synth_realtime_factor_cpu", length_s / cpu_s, "x real time")
    emit("synth_raw_megabytes_per_recorded_second", raw_bytes / 1e6 / length_s, "MB/s")
    for name, (base_wall_s, base_cpu_s) in base.items():
        emit(f"baseline_{name}_realtime_factor_wall", length_s / base_wall_s, "x real time")
        emit(f"baseline_{name}_realtime_factor_cpu", length_s / base_cpu_s, "x real time")
        emit(f"synth_speedup_vs_{name}_wall", base_wall_s / wall_s, "ratio")
        emit(f"synth_speedup_vs_{name}_cpu", base_cpu_s / cpu_s, "ratio")
    if args.default_user:
        default_user(args.seed, options.fps)


if __name__ == "__main__":
    main()
