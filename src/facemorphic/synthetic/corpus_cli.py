"""``facemorphic synth-corpus``: generate the synthetic scan corpus (D3DFACS / VOCASET layouts + truth)."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="output folder (e.g. resources/synthetic/scans)")
    parser.add_argument("--seed", type=int, default=0, help="corpus seed (default 0)")
    parser.add_argument("--d3dfacs-subjects", type=int, default=10, help="D3DFACS-style subjects (default 10)")
    parser.add_argument("--sequences-per-subject", type=int, default=8,
                        help="AU sequences per D3DFACS subject, half single AUs, half combinations (default 8)")
    parser.add_argument("--frames-per-sequence", type=int, default=5,
                        help="PLY frames per sequence: neutral, rise, apex, fall, release (default 5)")
    parser.add_argument("--vocaset-subjects", type=int, default=16, help="VOCASET-style subjects (default 16)")
    parser.add_argument("--vocaset-sentences", type=int, default=2, help="sentences per VOCASET subject (default 2)")
    parser.add_argument("--vocaset-frames", type=int, default=16, help="frames per sentence at 60 fps (default 16)")
    parser.add_argument("--noise-mm", type=float, default=0.2, help="scanner noise per vertex, mm (default 0.2)")


def run(args: argparse.Namespace) -> int:
    from ..errors import FacemorphicError
    from .corpus import CorpusOptions, generate_corpus

    if args.frames_per_sequence < 3:
        raise FacemorphicError("--frames-per-sequence must be at least 3 (neutral, apex, release)")
    if args.d3dfacs_subjects < 1 or args.sequences_per_subject < 1:
        raise FacemorphicError("--d3dfacs-subjects and --sequences-per-subject must be at least 1")
    options = CorpusOptions(d3dfacs_subjects=args.d3dfacs_subjects, sequences_per_subject=args.sequences_per_subject,
                            frames_per_sequence=args.frames_per_sequence, vocaset_subjects=args.vocaset_subjects,
                            vocaset_sentences=args.vocaset_sentences, vocaset_frames=args.vocaset_frames,
                            noise_mm=args.noise_mm)
    generate_corpus(args.out, args.seed, options)
    return 0
