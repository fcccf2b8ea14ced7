"""Compare the tables of two runs of the same config in two project folders (scripts/slurm_check.sh).

Every CSV file under ``results/`` must exist in both folders and be byte-identical, except that a cell may
name its own project folder: the manifest and rejects tables hold absolute paths of the recordings, so
those cells are compared with the folder's path replaced by a placeholder. Everything else, every logit of
predictions.csv, every epoch of metrics.csv and every score of the tables, must be equal as written. The
``run.json`` files must agree on every key except the paths (``out_dir``, ``shards_dir``, ``features_dir``,
``best_checkpoint``) and ``fit_seconds``, a wall-clock time.

    python scripts/compare_runs.py FOLDER_A FOLDER_B
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd

#: run.json keys that name a place or a duration, not a result
RUN_JSON_UNCOMPARED = {"out_dir", "shards_dir", "features_dir", "best_checkpoint", "fit_seconds"}


def relative_files(root: Path, pattern: str) -> set[str]:
    return {str(path.relative_to(root)) for path in (root / "results").rglob(pattern)}


def csv_differences(a: Path, b: Path, folder_a: Path, folder_b: Path) -> list[str]:
    """Columns of two CSV files that differ once each folder's own path is replaced by a placeholder."""
    if a.read_bytes() == b.read_bytes():
        return []
    table_a = pd.read_csv(a, dtype=str, keep_default_na=False)
    table_b = pd.read_csv(b, dtype=str, keep_default_na=False)
    if list(table_a.columns) != list(table_b.columns) or len(table_a) != len(table_b):
        return [(f"columns or rows differ: {list(table_a.columns)} x {len(table_a)} against "
                 f"{list(table_b.columns)} x {len(table_b)}")]
    for column in table_a.columns:
        table_a[column] = table_a[column].str.replace(str(folder_a.resolve()), "<project>", regex=False)
        table_b[column] = table_b[column].str.replace(str(folder_b.resolve()), "<project>", regex=False)
    differences = []
    for column in table_a.columns:
        unequal = table_a[column] != table_b[column]
        if unequal.any():
            differences.append(f"column {column}: {table_a[column][unequal].iloc[0]!r} against "
                               f"{table_b[column][unequal].iloc[0]!r}")
    return differences


def main(folder_a: str, folder_b: str) -> int:
    a, b = Path(folder_a), Path(folder_b)
    failures = []
    csvs_a, csvs_b = relative_files(a, "*.csv"), relative_files(b, "*.csv")
    if csvs_a != csvs_b:
        failures.append(f"CSV files only in {a}: {sorted(csvs_a - csvs_b)}; only in {b}: {sorted(csvs_b - csvs_a)}")
    identical = with_paths = 0
    for name in sorted(csvs_a & csvs_b):
        if (a / name).read_bytes() == (b / name).read_bytes():
            identical += 1
            continue
        differences = csv_differences(a / name, b / name, a, b)
        failures.extend(f"{name}: {difference}" for difference in differences)
        with_paths += not differences
    runs = sorted(relative_files(a, "run.json") & relative_files(b, "run.json"))
    for name in runs:
        run_a, run_b = (json.loads((folder / name).read_text()) for folder in (a, b))
        keys = (set(run_a) | set(run_b)) - RUN_JSON_UNCOMPARED
        failures.extend(f"{name}: {key}: {run_a.get(key)!r} against {run_b.get(key)!r}"
                        for key in sorted(keys) if run_a.get(key) != run_b.get(key))
    print(f"{len(csvs_a & csvs_b)} CSV files: {identical} byte-identical, {with_paths} equal once the project "
          f"folder is replaced; {len(runs)} run.json files compared")
    for failure in failures:
        print("DIFFERENT", failure)
    return 1 if failures or not csvs_a else 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    sys.exit(main(*sys.argv[1:]))
