"""``facemorphic synth``: generate one synthetic user's recordings (one Snakemake job per user)."""

from __future__ import annotations

import argparse

from .. import ACTION_UNITS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--root", required=True, help="dataset root (e.g. resources/synthetic)")
    parser.add_argument("--user", required=True, help="user folder name, e.g. user00")
    parser.add_argument("--user-index", type=int, required=True, help="index of the user (seeds its randomness)")
    parser.add_argument("--seed", type=int, default=0, help="dataset seed (default 0)")
    parser.add_argument("--repetitions", type=int, default=2, help="recordings per AU (default 2)")
    parser.add_argument("--free", type=int, default=1, help="free-interaction recordings (default 1)")
    parser.add_argument("--reading", type=int, default=4, help="sentence-reading recordings (default 4)")
    parser.add_argument("--aus", type=int, nargs="+", default=list(ACTION_UNITS),
                        help="AUs to record (default: all 24)")
    parser.add_argument("--au-duration", type=float, default=2.0, help="seconds per AU recording (default 2.0)")
    parser.add_argument("--free-duration", type=float, default=3.0, help="seconds per free recording (default 3.0)")
    parser.add_argument("--reading-duration", type=float, default=3.0,
                        help="seconds per reading recording (default 3.0)")
    parser.add_argument("--fps", type=int, default=30, help="RGB frame rate (default 30)")
    parser.add_argument("--rgb-format", choices=("mp4", "jpeg"), default="mp4",
                        help="H.264 MP4 or timestamped JPEG folders (default mp4)")
    parser.add_argument("--min-substeps", type=int, default=10,
                        help="event renders per RGB frame period at least (default 10: 300 Hz)")
    parser.add_argument("--max-substeps", type=int, default=24,
                        help="event renders per RGB frame period at most (default 24: 720 Hz)")
    parser.add_argument("--max-motion-px", type=float, default=0.5,
                        help="largest vertex motion between event renders, sensor pixels (default 0.5)")
    parser.add_argument("--contrast", type=float, default=0.25, help="mean contrast threshold, log units (0.25)")
    parser.add_argument("--contrast-sigma", type=float, default=0.03, help="per-pixel threshold spread (0.03)")
    parser.add_argument("--refractory-us", type=float, default=500.0, help="refractory period, us (500)")
    parser.add_argument("--noise-rate-hz", type=float, default=0.02,
                        help="background noise events per pixel per second (0.02)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    import logging

    from ..errors import FacemorphicError
    from .dataset import UserOptions, generate_user
    from .recording import EventOptions

    unknown = sorted(set(args.aus) - set(ACTION_UNITS))
    if unknown:
        raise FacemorphicError(f"--aus: {unknown} are not FACEMORPHIC Action Units {ACTION_UNITS}")
    if not 1 <= args.min_substeps <= args.max_substeps:
        raise FacemorphicError("--min-substeps must be at least 1 and at most --max-substeps")
    events = EventOptions(min_substeps=args.min_substeps, max_substeps=args.max_substeps,
                          max_motion_px=args.max_motion_px, contrast=args.contrast,
                          contrast_sigma=args.contrast_sigma, refractory_us=args.refractory_us,
                          noise_rate_hz=args.noise_rate_hz)
    options = UserOptions(repetitions=args.repetitions, free=args.free, reading=args.reading,
                          aus=tuple(args.aus), au_duration_s=args.au_duration, free_duration_s=args.free_duration,
                          reading_duration_s=args.reading_duration, fps=args.fps, rgb_format=args.rgb_format,
                          events=events)
    path = generate_user(args.root, args.user, args.user_index, args.seed, options, progress=not args.no_progress)
    logging.getLogger(__name__).info("wrote user %s (truth: %s)", args.user, path)
    return 0
