"""``facemorphic synth-corpus``: generate the synthetic scan corpus (D3DFACS / VOCASET layouts + truth)."""

from __future__ import annotations

import argparse

from ..options import add_options
from .options import CorpusOptions


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out-dir", required=True, help="output folder (e.g. resources/synthetic/scans)")
    add_options(parser, CorpusOptions, title="corpus options")

def run(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from ..options import options_from_args
    from .corpus import CorpusOptions as CorpusSettings
    from .corpus import generate_corpus

    options = asdict(options_from_args(CorpusOptions, args))
    seed = options.pop("seed")
    generate_corpus(args.out_dir, seed, CorpusSettings(**options))
    return 0
