"""``facemorphic quality``: the data-quality table ``results/quality.csv`` (one row per recording, the
rejected ones too), from the manifest, the rejects and the per-user events, landmarks and coefficients
files. The thresholds come from :class:`.options.QualityOptions`; the command only parses and calls
:func:`.table.build_quality_table`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..options import add_options
from .options import QualityOptions


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--manifest", required=True, type=Path, help="results/manifest.csv")
    parser.add_argument("--rejects", required=True, type=Path, help="results/rejects.csv")
    parser.add_argument("--events-dir", required=True, type=Path, help="folder of per-user event files {user}.h5")
    parser.add_argument("--landmarks-dir", required=True, type=Path, help="folder of per-user landmark files")
    parser.add_argument("--coefficients-dir", required=True, type=Path, help="folder of per-user coefficient files")
    parser.add_argument("--out", required=True, type=Path, help="the quality table, e.g. results/quality.csv")
    add_options(parser, QualityOptions, title="quality options")


def run(args: argparse.Namespace) -> int:
    """0 always once the table is written: unusable recordings are rows of the table, not errors."""
    import logging

    from ..options import options_from_args
    from .table import build_quality_table, write_quality

    log = logging.getLogger(__name__)
    options = options_from_args(QualityOptions, args)
    table = build_quality_table(args.manifest, args.rejects, args.events_dir, args.landmarks_dir,
                                args.coefficients_dir, options)
    write_quality(table, args.out)
    log.info("%s: %d rows, %d fit for training", args.out, len(table), int(table["train_ok"].sum()))
    return 0
