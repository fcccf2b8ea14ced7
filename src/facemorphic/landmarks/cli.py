"""``facemorphic landmarks``: 68-point landmarks of every RGB frame, per user (HDF5) or per file (CSV).

Two modes:

* ``--manifest results/manifest/{user}.csv --out results/landmarks/{user}.h5``: every recording of the
  manifest (optionally only ``--user``'s) into one HDF5 file in the landmarks file contract (docs/ARCHITECTURE.md);
* ``--input IMAGE|VIDEO|JPEG_FOLDER --out FILE.csv``: one row per frame for people who only want
  landmarks, in our columns (``--format facemorphic``) or OpenFace FeatureExtraction's
  (``--format openface``; the columns are listed in :mod:`.io`).

One face per frame is written: the largest in the first frame with a face, then the one nearest the
previous face (:func:`.backends.choose_face`), so a second person passing by does not take over.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from ..options import add_options
from .options import LandmarksOptions

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--manifest", help="manifest CSV (recording_id, user, rgb_path, rgb_frames, ...)")
    source.add_argument("--input", help="an image, a video or a folder of timestamped JPEG frames")
    parser.add_argument("--out", required=True, help="output .h5 (with --manifest); .csv or .h5 (with --input)")
    parser.add_argument("--user", help="only this user's manifest rows (default: all rows)")
    parser.add_argument("--truth-root", help="folder of synthetic truth files {user}.h5 (backend truth)")
    parser.add_argument("--format", choices=("facemorphic", "openface"), default="facemorphic",
                        help="CSV columns (with --input and a .csv): facemorphic = frame (from 0), time (s), "
                             "valid, interpolated, score, box, x0..x67, y0..y67, z0..z67; openface = OpenFace "
                             "FeatureExtraction's names: frame (from 1), face_id, timestamp (s), confidence, "
                             "success, x_0..x_67, y_0..y_67 in pixels (no X/Y/Z: OpenFace's are mm, we have no "
                             "depth). One face per frame (face_id 0): the largest at first, then the one nearest "
                             "the previous face")
    parser.add_argument("--no-progress", action="store_true",
                        help="no progress bars (bars are drawn only when stderr is a terminal anyway)")
    add_options(parser, LandmarksOptions, title="landmark options")


def run(args: argparse.Namespace) -> int:
    from ..errors import FacemorphicError
    from ..options import options_from_args
    from .backends import make_backend
    from .pipeline import (
        TrackOptions,
        landmark_manifest,
        landmark_stream,
        read_manifest_rows,
    )

    options = options_from_args(LandmarksOptions, args)
    if options.backend == "truth" and (args.input or not args.truth_root):
        raise FacemorphicError("--backend truth needs --manifest and --truth-root")
    if args.format != "facemorphic" and (args.manifest or Path(args.out).suffix.lower() != ".csv"):
        raise FacemorphicError(f"--format {args.format} applies to a CSV only: use --input with a .csv --out")
    backend = None
    if options.backend != "truth":
        backend = make_backend(options.backend, device=options.device, landmarks_type=options.landmarks_type,
                               flip=options.flip, compile=options.compile, batch_size=options.batch_size or None,
                               min_score=options.min_score)
    lanes = options.batch_size or (backend.default_batch_size if backend is not None else 1)
    track_options = TrackOptions(lanes=lanes, lane_frames=options.lane_frames, max_gap=options.max_gap,
                                 smooth=options.smooth, progress=not args.no_progress)
    backend_name = backend.name if backend is not None else "truth"
    if args.input:
        from ..fileio import write_csv_atomic
        from .io import openface_table, track_table

        track, _ = landmark_stream(backend, args.input, track_options)
        if Path(args.out).suffix.lower() in (".h5", ".hdf5"):
            import h5py

            from ..fileio import atomic_path
            from .io import write_track_group

            with atomic_path(args.out) as tmp, h5py.File(tmp, "w") as handle:
                write_track_group(handle, Path(args.input).stem, track, {"source": str(args.input),
                                                                         "backend": backend_name})
        elif Path(args.out).suffix.lower() == ".csv":
            write_csv_atomic(openface_table(track) if args.format == "openface" else track_table(track), args.out)
            log.info("%s: one face per frame (face_id 0): the largest in the first frame with a face, then the "
                     "one nearest the previous face; other faces in view are not written", args.out)
        else:
            raise FacemorphicError(f"--out {args.out}: give a .csv or an .h5 file name")
        log.info("wrote %s: %d frames, %d with a face (%.1f%% valid)", args.out, len(track), int(track.valid.sum()),
                 100 * float(track.valid.mean()) if len(track) else 0.0)
        return 0
    rows = read_manifest_rows(args.manifest, args.user)
    failures = landmark_manifest(rows, args.out, backend_name, backend, track_options, truth_root=args.truth_root)
    log.info("wrote %s: %d recordings, %d failed", args.out, len(rows) - len(failures), len(failures))
    if failures and len(failures) == len(rows):
        log.error("%s: every recording failed", args.out)
        return 1
    return 0
