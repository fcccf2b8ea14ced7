"""``facemorphic ingest`` and ``facemorphic split``.

``ingest`` discovers and probes recordings under a dataset root and writes one manifest and one rejects
file per user; with ``--manifest`` it also merges them and assigns the split in the same call (the way a
person runs it by hand). ``split`` does the merge alone from per-user files (the way Snakemake runs it,
so a change of split settings never re-probes recordings).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from .splits import PROTOCOLS

log = logging.getLogger(__name__)


def add_split_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--protocol", choices=PROTOCOLS, default="video",
                        help="video: stratified by AU over recordings (the paper's); subject: by user")
    parser.add_argument("--test-fraction", type=float, default=0.2, help="fraction of recordings/users in test")
    parser.add_argument("--seed", type=int, default=0, help="seed of the split")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--root", required=True, type=Path, help="dataset root ({root}/{user}/AU_{n}/...)")
    parser.add_argument("--users", nargs="*", default=None,
                        help="users (folder names) to ingest; default: every user folder under the root")
    parser.add_argument("--sync-csv", nargs="*", default=[], type=Path,
                        help="CSV files with recording_id,event_offset_us overriding the first-event offset")
    parser.add_argument("--per-user-dir", required=True, type=Path,
                        help="folder for {user}.csv and {user}.rejects.csv")
    parser.add_argument("--manifest", type=Path, default=None, help="also write the merged manifest here")
    parser.add_argument("--rejects", type=Path, default=None, help="merged rejects (with --manifest)")
    add_split_arguments(parser)
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from ..errors import FacemorphicError
    from ..fileio import write_csv_atomic
    from .layout import list_users
    from .manifest import ingest_user, read_sync_csv

    if not args.root.is_dir():
        raise FacemorphicError(f"dataset root {args.root} does not exist or is not a folder")
    users = args.users if args.users else list_users(args.root)
    if not users:
        raise FacemorphicError(f"no user folders (holding AU_* folders) under {args.root}")
    offsets = read_sync_csv([p for p in args.sync_csv if str(p) not in ("", ".")])
    written = []
    for user in users:
        rows, rejects = ingest_user(args.root, user, offsets, progress=not args.no_progress)
        write_csv_atomic(rows, args.per_user_dir / f"{user}.csv")
        write_csv_atomic(rejects, args.per_user_dir / f"{user}.rejects.csv")
        written.append(user)
    if args.manifest is not None:
        rejects_out = args.rejects or args.manifest.with_name("rejects.csv")
        _merge_and_write(
            [args.per_user_dir / f"{u}.csv" for u in written],
            [args.per_user_dir / f"{u}.rejects.csv" for u in written],
            args.manifest, rejects_out, args,
        )
    return 0


def _merge_and_write(manifests, rejects, manifest_out, rejects_out, args) -> None:
    from ..fileio import write_csv_atomic
    from .manifest import merge_manifests

    manifest, all_rejects = merge_manifests(manifests, rejects, args.protocol, args.test_fraction, args.seed)
    write_csv_atomic(manifest, manifest_out)
    write_csv_atomic(all_rejects, rejects_out)
    counts = manifest["split"].value_counts().to_dict()
    log.info("manifest %s: %d recordings (%s), %d rejects in %s", manifest_out, len(manifest), counts,
             len(all_rejects), rejects_out)


def add_split_command_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--user-manifests", nargs="+", required=True, type=Path, help="per-user {user}.csv files")
    parser.add_argument("--user-rejects", nargs="*", default=[], type=Path, help="per-user {user}.rejects.csv")
    parser.add_argument("--manifest", required=True, type=Path, help="merged manifest with the split column")
    parser.add_argument("--rejects", required=True, type=Path, help="merged rejects")
    add_split_arguments(parser)


def run_split(args: argparse.Namespace) -> int:
    _merge_and_write(args.user_manifests, args.user_rejects, args.manifest, args.rejects, args)
    return 0
