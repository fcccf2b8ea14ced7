"""The event representation study (``snakemake representations``): one event model trained on each event
representation, one row per representation variant (``results/tables/table6_representations.csv``).

The paper compares models on one event representation (Prophesee's periodic frames at the RGB rate) and
calls for a study of the others; this table is that study. Each variant is a set of ``events`` options
(the ``representations.variants`` config block: the ``events`` block overridden by the variant) drawn into
event frames, packed into event-only shards and used to train the same experiment over the same seeds.

A row gives the variant's name and its event-frame parameters (``representation``, ``subwindows``, the
frame size, ``accumulation_us`` and the representation's own parameter: ``palette`` for periodic frames,
``tau_us`` for time surfaces, ``bins`` for voxel grids and TBR; empty where the representation has none),
followed by exactly the columns of Table 3, computed by :func:`.tables.summarise_rows` over the variant's
runs: mean and standard deviation over seeds, the 95 % bootstrap interval over test recordings, n, chance,
the one-class flag and the caveat columns. ``paper_top{k}_pct`` is kept only on a row drawn the paper's
way (periodic frames, one sub-window, the whole RGB frame interval); the paper reports no other
representation. Rows follow the order the variants are given in.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import FacemorphicError
from ..fileio import write_csv_atomic
from ..metrics import TOPK
from .tables import SUMMARY_COLUMNS, load_runs, summarise_rows

log = logging.getLogger(__name__)

TABLE_NAME = "table6_representations"
#: The event-frame parameters a row names (those a variant does not use are left empty).
PARAMETER_COLUMNS = ["representation", "subwindows", "width", "height", "accumulation_us", "palette", "tau_us",
                     "bins"]
TABLE_COLUMNS = ["variant", *PARAMETER_COLUMNS, *SUMMARY_COLUMNS]


def parse_variant_runs(items) -> dict[str, list[str]]:
    """``["VARIANT=RUN_DIR", ...]`` -> ``{variant: [run folders]}``, variants in order of first mention."""
    out: dict[str, list[str]] = {}
    for item in items:
        variant, sep, run_dir = str(item).partition("=")
        if not sep or not variant or not run_dir:
            raise FacemorphicError(f"--representation-runs: {item!r} is not of the form VARIANT=RUN_DIR")
        out.setdefault(variant, []).append(run_dir)
    return out


def parse_variant_parameters(text: str | None) -> dict[str, dict]:
    """The ``--representation-variants`` JSON object: ``{variant: {events option: value}}``."""
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise FacemorphicError(f"--representation-variants is not valid JSON ({exc.msg} at position "
                               f"{exc.pos})") from None
    if not isinstance(value, dict) or not all(isinstance(v, dict) for v in value.values()):
        raise FacemorphicError("--representation-variants must be a JSON object of objects {variant: {option: value}}")
    return value


def is_paper_setting(parameters: dict) -> bool:
    """Drawn as the paper's frames: periodic frames, one sub-window, the whole RGB frame interval."""
    return (parameters.get("representation", "periodic_frame") == "periodic_frame"
            and int(parameters.get("subwindows", 1)) == 1 and int(parameters.get("accumulation_us", 0)) == 0)


def representation_table(runs: pd.DataFrame, predictions: dict[str, pd.DataFrame], variant_of_run: dict[str, str],
                         parameters: dict[str, dict] | None = None, data_source: str = "unstated",
                         order=None) -> pd.DataFrame:
    """One row per variant (per experiment within a variant, should one hold several) over its seeds.

    ``runs`` and ``predictions`` are :func:`.tables.load_runs`'s; ``variant_of_run`` maps each run folder (as
    in ``runs["run"]``) to its variant; ``parameters`` gives each variant's event-frame options (a variant
    without them has empty parameter columns and no paper value); ``order`` the variants' row order
    (default: sorted names).
    """
    parameters = parameters or {}
    unknown = sorted(set(runs["run"]) - set(variant_of_run))
    if unknown:
        raise FacemorphicError(f"runs without a variant: {unknown}")
    variants = runs["run"].map(variant_of_run)
    order = list(order) if order is not None else sorted(set(variants))
    rows = []
    for variant in order:
        summary = summarise_rows(runs[variants == variant], predictions, data_source)
        if summary.empty:
            log.warning("variant %s has no scored runs; it has no row", variant)
            continue
        given = parameters.get(variant, {})
        summary["variant"] = variant
        for column in PARAMETER_COLUMNS:
            summary[column] = _cell(given.get(column))
        if not given or not is_paper_setting(given):
            for k in TOPK:
                summary[f"paper_top{k}_pct"] = np.nan
        rows.append(summary)
    if not rows:
        return pd.DataFrame(columns=TABLE_COLUMNS)
    return pd.concat(rows, ignore_index=True)[TABLE_COLUMNS]


def _cell(value) -> str:
    """A parameter as written in its column: integers without decimals, empty where not used."""
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def write_representation_table(variant_runs: dict[str, list], tables_dir: str | Path,
                               parameters: dict[str, dict] | None = None, split: str = "test",
                               data_source: str = "unstated") -> pd.DataFrame:
    """Score each variant's run folders on ``split`` and write ``{tables_dir}/table6_representations.csv``."""
    parameters = parameters or {}
    extra = sorted(set(parameters) - set(variant_runs))
    if extra:
        raise FacemorphicError(f"--representation-variants names variants without runs: {extra}")
    variant_of_run, run_dirs = {}, []
    for variant, dirs in variant_runs.items():
        for run_dir in dirs:
            run_dir = Path(run_dir)
            run_dir = run_dir.parent if run_dir.name == "run.json" else run_dir
            if str(run_dir) in variant_of_run:
                if variant_of_run[str(run_dir)] != variant:
                    raise FacemorphicError(f"run folder {run_dir} is given for two variants")
                continue  # given twice: scored once
            variant_of_run[str(run_dir)] = variant
            run_dirs.append(run_dir)
    runs, predictions = load_runs(run_dirs, split)
    if runs.empty:
        raise FacemorphicError(f"no run with {split} predictions among {len(run_dirs)} representation run folders")
    table = representation_table(runs, predictions, variant_of_run, parameters, data_source, order=list(variant_runs))
    write_csv_atomic(table, Path(tables_dir) / f"{TABLE_NAME}.csv", float_format="%.4f")
    log.info("%s: %d variants from %d runs written to %s", TABLE_NAME, len(table), len(runs), tables_dir)
    return table
