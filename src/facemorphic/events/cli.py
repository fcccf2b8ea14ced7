"""``facemorphic events``: event frames aligned to the RGB frames for the recordings of one user."""

from __future__ import annotations

import argparse

REPRESENTATIONS = ("periodic_frame", "histogram", "time_surface", "voxel_grid", "tbr")
PALETTES = ("dark", "light", "coolwarm", "gray")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--manifest", required=True, help="manifest CSV (recording_id, user, raw_path, rgb_path, "
                                                          "event_offset_us, ...)")
    parser.add_argument("--user", default=None, help="only this user's rows (default: every row of the manifest)")
    parser.add_argument("--out", required=True, help="output HDF5, e.g. results/events/{user}.h5")
    parser.add_argument("--data-root", default=None, help="folder that relative raw_path/rgb_path values are in")
    parser.add_argument("--representation", choices=REPRESENTATIONS, default="periodic_frame")
    parser.add_argument("--palette", choices=PALETTES, default="dark", help="periodic_frame colours (gray: 1 channel)")
    parser.add_argument("--bins", type=int, default=5, help="voxel_grid bins B / tbr bins N (<= 8)")
    parser.add_argument("--tau-us", type=float, default=10000.0, help="time_surface decay constant")
    parser.add_argument("--voxel-scale", type=float, default=16.0, help="voxel_grid: stored = 128 + scale * V")
    parser.add_argument("--width", type=int, default=0, help="frame width (0: sensor width)")
    parser.add_argument("--height", type=int, default=0, help="frame height (0: sensor height)")
    parser.add_argument("--subwindows", type=int, default=1, help="S sub-windows per RGB frame interval")
    parser.add_argument("--accumulation-us", type=int, default=0,
                        help="draw only the last N us of each window (0: the whole RGB frame interval)")


def run(args: argparse.Namespace) -> int:
    import json
    import logging

    from ..errors import FacemorphicError
    from .representations import Representation
    from .stage import FrameConfig, build_user_file, read_manifest

    if (args.width > 0) != (args.height > 0):
        raise FacemorphicError("--width and --height must be given together (or both 0 for the sensor size)")
    try:
        rep = Representation(args.representation, palette=args.palette, bins=args.bins, tau_us=args.tau_us,
                             voxel_scale=args.voxel_scale)
    except ValueError as exc:
        raise FacemorphicError(f"--representation {args.representation}: {exc}") from None
    if args.subwindows < 1 or args.accumulation_us < 0:
        raise FacemorphicError("--subwindows must be >= 1 and --accumulation-us >= 0")
    config = FrameConfig(rep, (args.width, args.height) if args.width > 0 else None, args.subwindows,
                         args.accumulation_us)
    manifest = read_manifest(args.manifest, args.user)
    result = build_user_file(manifest, args.out, config, progress=True, data_root=args.data_root)
    failures = json.dumps(result["failures"]) if result["failures"] else ""
    logging.getLogger(__name__).info("%s: %d recordings written, %d failed %s", args.out, len(result["written"]),
                                     len(result["failures"]), failures)
    return 0
