"""``facemorphic events``: event frames aligned to the RGB frames for the recordings of one user.

The options come from :class:`.options.EventsOptions` (flags and ``--options JSON``); the paths are plain
flags. The command only parses and calls :func:`.stage.run_events`.
"""

from __future__ import annotations

import argparse

from ..options import add_options
from .options import EventsOptions


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--manifest", required=True, help="manifest CSV (recording_id, user, raw_path, rgb_path, "
                                                          "event_offset_us, ...)")
    parser.add_argument("--user", default=None, help="only this user's rows (default: every row of the manifest)")
    parser.add_argument("--out", required=True, help="output HDF5, e.g. results/events/{user}.h5")
    parser.add_argument("--data-root", default=None, help="folder that relative raw_path/rgb_path values are in")
    add_options(parser, EventsOptions, title="events options")


def run(args: argparse.Namespace) -> int:
    """0 when at least one recording was written, or the user had none (failures are logged and in the file);
    1 when every recording failed."""
    import logging

    from ..options import options_from_args
    from .stage import run_events

    log = logging.getLogger(__name__)
    options = options_from_args(EventsOptions, args)
    result = run_events(args.manifest, args.out, options, user=args.user, data_root=args.data_root, progress=True)
    for rid, reason in result.failures.items():
        log.error("%s: %s", rid, reason)
    log.info("%s: %d recordings written, %d failed", args.out, len(result.written), len(result.failures))
    if result.failures and not result.written:
        log.error("%s: every recording failed", args.out)
        return 1
    return 0
