"""``facemorphic synth``: generate one synthetic user's recordings (one Snakemake job per user)."""

from __future__ import annotations

import argparse

from ..options import add_options
from .options import SynthOptions


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out-dir", required=True,
                        help="dataset root to write the user into (e.g. resources/synthetic)")
    parser.add_argument("--user", required=True, help="user folder name, e.g. user00")
    parser.add_argument("--user-index", type=int, required=True, help="index of the user (seeds its randomness)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_options(parser, SynthOptions, title="synthetic data options")


def run(args: argparse.Namespace) -> int:
    import logging

    from ..options import options_from_args
    from .dataset import UserOptions, generate_user
    from .recording import EventOptions

    options = options_from_args(SynthOptions, args)
    events = EventOptions(min_substeps=options.min_substeps, max_substeps=options.max_substeps,
                          max_motion_px=options.max_motion_px, contrast=options.contrast,
                          contrast_sigma=options.contrast_sigma, refractory_us=options.refractory_us,
                          noise_rate_hz=options.noise_rate_hz)
    user_options = UserOptions(repetitions=options.repetitions, free=options.free, reading=options.reading,
                               aus=tuple(options.aus), au_duration_s=options.au_duration_s,
                               free_duration_s=options.free_duration_s,
                               reading_duration_s=options.reading_duration_s, fps=options.fps,
                               rgb_format=options.rgb_format, events=events)
    path = generate_user(args.out_dir, args.user, args.user_index, options.seed, user_options,
                         progress=not args.no_progress)
    logging.getLogger(__name__).info("wrote user %s (truth: %s)", args.user, path)
    return 0
