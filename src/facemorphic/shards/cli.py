"""``facemorphic shards``: pack the AU recordings of each split into training-ready HDF5 shards."""

from __future__ import annotations


def add_arguments(parser) -> None:
    parser.add_argument("--manifest", required=True, help="results/manifest.csv")
    parser.add_argument("--events-dir", required=True, help="folder of per-user event files {user}.h5")
    parser.add_argument("--coefficients-dir", required=True, help="folder of per-user coefficient files {user}.h5")
    parser.add_argument("--out-dir", required=True, help="writes {out-dir}/{split}/shard-{k}.h5 and index.csv")
    parser.add_argument("--size", type=int, default=112, help="model input size in pixels (square)")
    parser.add_argument("--crop", choices=("center", "full"), default="center",
                        help="center: central square, then resize; full: whole frame squashed")
    parser.add_argument("--num-shards", type=int, default=1, help="shard files per split")
    parser.add_argument("--splits", nargs="+", default=["train", "test"], help="splits to write")
    parser.add_argument("--modalities", nargs="+", choices=("events", "rgb"), default=["events", "rgb"])
    parser.add_argument("--data-root", default=None, help="resolve relative rgb_path values against this folder")


def run(args) -> int:
    from .build import build_shards

    if args.num_shards < 1 or args.size < 8:
        from ..errors import FacemorphicError

        raise FacemorphicError("--num-shards must be >= 1 and --size >= 8")
    build_shards(args.manifest, args.events_dir, args.coefficients_dir, args.out_dir, size=args.size,
                 crop=args.crop, num_shards=args.num_shards, splits=tuple(args.splits),
                 modalities=tuple(args.modalities), data_root=args.data_root)
    return 0
