"""``facemorphic landmarks``: 68-point landmarks of every RGB frame, per user (HDF5) or per file (CSV).

Two modes:

* ``--manifest results/manifest/{user}.csv --out results/landmarks/{user}.h5``: every recording of the
  manifest (optionally only ``--user``'s) into one HDF5 file in the DESIGN.md landmarks contract;
* ``--input IMAGE|VIDEO|JPEG_FOLDER --out FILE.csv``: one row per frame, like OpenFace's
  FeatureExtraction, for people who only want landmarks.
"""

from __future__ import annotations

import argparse
import logging

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--manifest", help="manifest CSV (recording_id, user, rgb_path, rgb_frames, ...)")
    source.add_argument("--input", help="an image, a video or a folder of timestamped JPEG frames")
    parser.add_argument("--out", required=True, help="output .h5 (with --manifest) or .csv (with --input)")
    parser.add_argument("--user", help="only this user's manifest rows (default: all rows)")
    parser.add_argument("--backend", default="auto", choices=["auto", "face_alignment", "dlib", "truth"],
                        help="auto: face_alignment when its weights are cached, else dlib (default auto)")
    parser.add_argument("--landmarks-type", default="2.5D", choices=["2D", "2.5D", "3D"],
                        help="face_alignment network: 2.5D (3DFAN x,y; default), 3D (adds depth), 2D (2DFAN)")
    parser.add_argument("--device", default="auto", help="face_alignment device: auto, cpu, cuda, cuda:N")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="frames per landmark-network batch (tracking lanes); default: dlib 1, "
                             "face_alignment 32 on CUDA, 4 on CPU")
    parser.add_argument("--lane-frames", type=int, default=32,
                        help="frames each lane tracks per chunk; a chunk is batch-size x lane-frames frames")
    parser.add_argument("--max-gap", type=int, default=5,
                        help="interpolate runs of at most this many frames without a face (0: never)")
    parser.add_argument("--smooth", type=int, default=0,
                        help="Savitzky-Golay window in frames for temporal smoothing (0: off)")
    parser.add_argument("--min-score", type=float, default=None,
                        help="face acceptance threshold: dlib HOG score (default 0), FAN mean heatmap "
                             "peak (default 0.2)")
    parser.add_argument("--no-flip", action="store_true", help="face_alignment: skip the flipped second pass")
    parser.add_argument("--compile", action="store_true", help="face_alignment: torch.compile the networks")
    parser.add_argument("--truth-root", help="folder of synthetic truth files {user}.h5 (backend truth)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    from ..errors import FacemorphicError
    from .backends import make_backend
    from .pipeline import TrackOptions, landmark_manifest, landmark_stream, read_manifest_rows

    if args.backend == "truth" and (args.input or not args.truth_root):
        raise FacemorphicError("--backend truth needs --manifest and --truth-root")
    backend = None
    if args.backend != "truth":
        backend = make_backend(args.backend, device=args.device, landmarks_type=args.landmarks_type,
                               flip=not args.no_flip, compile=args.compile, batch_size=args.batch_size,
                               min_score=args.min_score)
    lanes = args.batch_size or (backend.default_batch_size if backend is not None else 1)
    options = TrackOptions(lanes=lanes, lane_frames=args.lane_frames, max_gap=args.max_gap,
                           smooth=args.smooth, progress=not args.no_progress)
    backend_name = backend.name if backend is not None else "truth"
    if args.input:
        from ..fileio import write_csv_atomic
        from .io import track_table

        track, _ = landmark_stream(backend, args.input, options)
        write_csv_atomic(track_table(track), args.out)
        log.info("wrote %s (%d frames, %d with a face)", args.out, len(track), int(track.valid.sum()))
        return 0
    rows = read_manifest_rows(args.manifest, args.user)
    failures = landmark_manifest(rows, args.out, backend_name, backend, options, truth_root=args.truth_root)
    log.info("wrote %s: %d recordings, %d failed", args.out, len(rows) - len(failures), len(failures))
    return 0
