"""``facemorphic ingest`` and ``facemorphic split``.

``ingest`` discovers and probes recordings under a dataset root and writes one manifest and one rejects
file per user; with ``--manifest`` it also merges them and assigns the split in the same call (the way a
person runs it by hand). ``split`` does the merge alone from per-user files (the way Snakemake runs it,
so a change of split settings never re-probes recordings).
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from ..options import add_options
from .options import IngestOptions, SplitOptions

log = logging.getLogger(__name__)


def add_split_arguments(parser: argparse.ArgumentParser, json_flag: bool = True) -> None:
    add_options(parser, SplitOptions, title="split options", json_flag=json_flag)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--root", required=True, type=Path, help="dataset root ({root}/{user}/AU_{n}/...)")
    parser.add_argument("--users", nargs="*", default=None,
                        help="users (folder names) to ingest; default: every user folder under the root")
    parser.add_argument("--sync-csv", nargs="*", default=[], type=Path,
                        help="CSV files with recording_id,event_offset_us overriding the first-event offset")
    parser.add_argument("--out-dir", required=True, type=Path,
                        help="folder for {user}.csv and {user}.rejects.csv")
    parser.add_argument("--manifest", type=Path, default=None, help="also write the merged manifest here")
    parser.add_argument("--rejects", type=Path, default=None, help="merged rejects (with --manifest)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_options(parser, IngestOptions, title="ingest options")
    add_split_arguments(parser, json_flag=False)  # by hand, with --manifest: the split's flags


def run(args: argparse.Namespace) -> int:
    from ..errors import FacemorphicError
    from ..fileio import write_csv_atomic
    from .ingest import ingest_user, read_sync_csv
    from .layout import list_users

    if not args.root.is_dir():
        raise FacemorphicError(f"dataset root {args.root} does not exist or is not a folder")
    users = args.users if args.users else list_users(args.root)
    if not users:
        raise FacemorphicError(f"no user folders (holding AU_* folders) under {args.root}")
    from ..names import is_safe_name, unsafe_name_reason

    args.unsafe_users = [user for user in users if not is_safe_name(user)]
    for user in args.unsafe_users:
        log.warning("%s: user folder %s", args.root / user, unsafe_name_reason(user))
    users = [user for user in users if is_safe_name(user)]
    from ..options import options_from_args

    ingest = options_from_args(IngestOptions, args)
    offsets = read_sync_csv([p for p in args.sync_csv if str(p) not in ("", ".")])
    written = []
    for user in users:
        rows, rejects = ingest_user(args.root, user, offsets, progress=not args.no_progress, sync=ingest.sync)
        write_csv_atomic(rows, args.out_dir / f"{user}.csv")
        write_csv_atomic(rejects, args.out_dir / f"{user}.rejects.csv")
        written.append(user)
    if args.manifest is not None:
        rejects_out = args.rejects or args.manifest.with_name("rejects.csv")
        _merge_and_write(
            [args.out_dir / f"{u}.csv" for u in written],
            [args.out_dir / f"{u}.rejects.csv" for u in written],
            args.manifest, rejects_out, args,
        )
    return 0


def _merge_and_write(manifests, rejects, manifest_out, rejects_out, args) -> None:
    from ..fileio import write_csv_atomic
    from ..options import options_from_args
    from .ingest import merge_manifests

    # `ingest --manifest` takes the split's values from its flags; its --options JSON is the ingest's own
    split = options_from_args(SplitOptions, args, use_json=getattr(args, "_module", "").endswith("split_cli"))
    manifest, all_rejects = merge_manifests(manifests, rejects, split.protocol, split.test_fraction, split.seed)
    unsafe = list(getattr(args, "unsafe_users", None) or json.loads(getattr(args, "unsafe_users_json", "[]")))
    if unsafe:
        import pandas as pd

        from ..names import unsafe_name_reason
        from .manifest import REJECT_COLUMNS

        root = getattr(args, "root", None) or Path(".")
        rows = pd.DataFrame([{"user": name, "recording_id": "", "path": str(root / name),
                              "reason": f"user folder {unsafe_name_reason(name)}"} for name in unsafe],
                            columns=REJECT_COLUMNS)
        all_rejects = pd.concat([all_rejects, rows], ignore_index=True)
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
    parser.add_argument("--root", type=Path, default=None, help="dataset root (names the rejected user folders)")
    parser.add_argument("--unsafe-users-json", default="[]",
                        help="JSON list of user folders left out for their names (JSON, since a name may look "
                             "like an option); recorded in the rejects with the reason (default: [])")
    add_split_arguments(parser)


def run_split(args: argparse.Namespace) -> int:
    _merge_and_write(args.user_manifests, args.user_rejects, args.manifest, args.rejects, args)
    return 0
