"""``facemorphic decode RAW --out FILE``: a RAW/DAT file to .npy / .csv / .h5 events (triggers beside it)."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("raw", help="Prophesee RAW (EVT 3.0 / EVT 2.0) or DAT file")
    parser.add_argument("--out", required=True,
                        help="output .npy (reference dtype t,x,y,p), .csv or .h5; triggers go to "
                             "{stem}.triggers{suffix} (inside the file for .h5)")
    parser.add_argument("--chunk-words", type=int, default=1 << 22, help="words decoded per block (memory bound)")


def run(args: argparse.Namespace) -> int:
    from .convert import convert_raw

    convert_raw(args.raw, args.out, chunk_words=args.chunk_words, progress=True)
    return 0
