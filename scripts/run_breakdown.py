"""Per-stage cost of a pipeline run, from the benchmark files Snakemake wrote (``benchmarks/out/``).

Every rule's ``benchmark:`` file holds one job's wall seconds (``s``) and CPU seconds (``cpu_time``); this sums
them per stage (the first folder under ``benchmarks/out``, or the file name for single jobs) and prints a
Markdown table, the one in the README::

    .venv/bin/python scripts/run_breakdown.py [benchmarks/out] [--wall-minutes 14.2]

The jobs of a stage overlap in time, so a stage's summed job time is more than the time it held the run;
``--wall-minutes`` (the whole run as measured) is printed beside the sums for scale.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd


def stage_costs(bench_dir: Path) -> pd.DataFrame:
    """One row per stage: jobs, summed wall and CPU seconds, the longest job."""
    rows = []
    for path in sorted(bench_dir.rglob("*.tsv")):
        relative = path.relative_to(bench_dir)
        stage = relative.parts[0] if len(relative.parts) > 1 else relative.stem
        if stage in ("sweep", "train"):
            stage = f"{stage} ({relative.parts[1]})"  # per experiment: where the training time goes
        table = pd.read_csv(path, sep="\t")
        rows.append({"stage": stage, "wall_s": float(table["s"].iloc[-1]),
                     "cpu_s": float(pd.to_numeric(table["cpu_time"], errors="coerce").fillna(0).iloc[-1])})
    jobs = pd.DataFrame(rows)
    return (jobs.groupby("stage", sort=False)
            .agg(jobs=("wall_s", "size"), wall_s=("wall_s", "sum"), cpu_s=("cpu_s", "sum"),
                 longest_job_s=("wall_s", "max"))
            .reset_index())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bench_dir", nargs="?", default="benchmarks/out", type=Path)
    parser.add_argument("--wall-minutes", type=float, default=None, help="the whole run's measured wall time")
    args = parser.parse_args()
    costs = stage_costs(args.bench_dir)
    print("| stage | jobs | summed job wall (s) | summed CPU (s) | longest job (s) |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for row in costs.itertuples():
        print(f"| {row.stage} | {row.jobs} | {row.wall_s:.0f} | {row.cpu_s:.0f} | {row.longest_job_s:.0f} |")
    print(f"| all | {costs['jobs'].sum()} | {costs['wall_s'].sum():.0f} | {costs['cpu_s'].sum():.0f} | |")
    if args.wall_minutes is not None:
        print(f"\nWhole run: {args.wall_minutes:.1f} min wall.")


if __name__ == "__main__":
    main()
