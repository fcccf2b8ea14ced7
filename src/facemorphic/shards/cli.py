"""``facemorphic shards``: pack the AU recordings of each split into training-ready HDF5 shards.

The options come from :class:`.options.ShardsOptions` (flags and ``--options JSON``); the paths and the
splits are plain flags. The command only parses and calls :func:`.build.run_shards`.
"""

from __future__ import annotations

import argparse

from ..options import add_options
from .options import ShardsOptions


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--manifest", required=True, help="results/manifest.csv")
    parser.add_argument("--events-dir", required=True, help="folder of per-user event files {user}.h5")
    parser.add_argument("--coefficients-dir", required=True, help="folder of per-user coefficient files {user}.h5")
    parser.add_argument("--landmarks-dir", default=None,
                        help="folder of per-user landmarks files {user}.h5 (needed by the rgb_face modality only)")
    parser.add_argument("--out-dir", required=True, help="writes {out-dir}/{split}/shard-{k}.h5 and index.csv")
    parser.add_argument("--splits", nargs="+", default=["train", "test"], help="splits to write")
    parser.add_argument("--data-root", default=None, help="resolve relative rgb_path values against this folder")
    parser.add_argument("--quality", default=None,
                        help="results/quality.csv: recordings with train_ok false there are left out (reason in "
                             "index.csv)")
    add_options(parser, ShardsOptions, title="shards options")


def run(args: argparse.Namespace) -> int:
    """0 when a sample was written (skipped recordings are logged and in index.csv), 1 when none was."""
    import logging

    from ..errors import FacemorphicError
    from ..options import options_from_args
    from .build import run_shards

    log = logging.getLogger(__name__)
    options = options_from_args(ShardsOptions, args)
    if "rgb_face" in options.modalities and not args.landmarks_dir:
        raise FacemorphicError("the rgb_face modality crops RGB frames to the face boxes of the landmarks files: "
                               "give --landmarks-dir (or leave rgb_face out of --modalities)")
    result = run_shards(args.manifest, args.events_dir, args.coefficients_dir, args.out_dir, options,
                        splits=tuple(args.splits), data_root=args.data_root, quality_path=args.quality,
                        landmarks_dir=args.landmarks_dir)
    n_written = sum(len(ids) for ids in result.written.values())
    log.info("%s: %d samples written, %d recordings skipped", args.out_dir, n_written, len(result.failures))
    if result.failures and not n_written:
        log.error("%s: every AU recording was skipped", args.out_dir)
        return 1
    return 0
