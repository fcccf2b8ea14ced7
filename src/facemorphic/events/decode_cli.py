"""``facemorphic decode RAW --out FILE``: a RAW/DAT file to .npy / .csv / .h5 events (triggers beside it).

The help spells out units and columns, since a user otherwise has to guess whether ``t`` is seconds,
microseconds or shifted to zero (it is raw sensor microseconds), and which tools open the ``.h5``.
"""

from __future__ import annotations

import argparse

OUTPUT_HELP = """\
outputs: times are microseconds (us) of the raw sensor clock, not shifted to zero;
p is 0 = OFF, 1 = ON.
  .npy   structured array t int64 (us), x uint16, y uint16, p uint8, in stream order
         (the dtype of Prophesee's reference decoders); triggers in {stem}.triggers.npy:
         t int64 (us), id uint8, p uint8
  .csv   header t,x,y,p, integers (t in us); triggers in {stem}.triggers.csv: t,id,p
  .h5    datasets events/t int64 (us, attr unit="us"), events/x uint16, events/y uint16,
         events/p uint8, and triggers/t, triggers/id, triggers/p beside them; root attrs
         format, width, height, source, n_outside, truncated. Opened by evlib
         (evlib.load_events(path)) and by h5py column by column (same field names as
         DSEC's events.h5). Metavision's HDF5 reader needs its ECF-compressed
         CD/events layout, which is not written: give Metavision the RAW file itself.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = OUTPUT_HELP
    parser.add_argument("raw", help="Prophesee RAW (EVT 3.0 / EVT 2.0) or DAT file")
    parser.add_argument("--out", required=True,
                        help="output .npy, .csv or .h5 (columns and units below); triggers go to "
                             "{stem}.triggers{suffix} (inside the file for .h5)")
    parser.add_argument("--chunk-words", type=int, default=1 << 22, help="words decoded per block (memory bound)")


def run(args: argparse.Namespace) -> int:
    from .convert import convert_raw

    convert_raw(args.raw, args.out, chunk_words=args.chunk_words, progress=True)
    return 0
