"""The ``facemorphic`` command: one subcommand per pipeline stage.

Each stage module exposes ``add_arguments(parser)`` and ``run(args) -> int`` in a small ``cli`` module
that imports its heavy dependencies lazily, so ``facemorphic --help`` stays fast. The stages are
listed in :data:`STAGES`; adding a stage is one line here.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from . import __version__
from .errors import FacemorphicError

#: subcommand -> (module with add_arguments/run, one-line help)
STAGES: dict[str, tuple[str, str]] = {
    "synth": ("facemorphic.synthetic.cli", "generate one synthetic user's recordings with ground truth"),
    "synth-corpus": ("facemorphic.synthetic.corpus_cli", "generate the synthetic 3D scan corpus with ground truth"),
    "ingest": ("facemorphic.dataset.cli", "discover recordings, probe them, write per-user manifests and rejects"),
    "decode": ("facemorphic.events.decode_cli", "convert a Prophesee RAW/DAT file to .npy/.csv/.h5 events"),
    "events": ("facemorphic.events.cli", "event frames aligned to the RGB frames, one HDF5 per user"),
    "split": ("facemorphic.dataset.split_cli", "merge per-user manifests, assign the train/test split"),
    "landmarks": ("facemorphic.landmarks.cli", "68-point landmarks of RGB frames, per user (HDF5) or per file (CSV)"),
    "morphable": ("facemorphic.morphable.cli", "learn the identity and AU 3DMM bases from scans (or import released ones)"),
    "fit": ("facemorphic.fitting.cli", "fit per-frame 3DMM identity and AU coefficients to one user's landmarks"),
    "quality": ("facemorphic.quality.cli", "the data-quality table: one row per recording, train_ok with the reason"),
    "shards": ("facemorphic.shards.cli", "pack AU recordings per split into training-ready HDF5 shards"),
    "features": ("facemorphic.training.features_cli", "cache frozen ResNet-18 features of every frame"),
    "train": ("facemorphic.training.cli", "train and evaluate one model run (one experiment, one seed)"),
    "evaluate": ("facemorphic.evaluation.cli", "the paper's tables and confusion figures from the runs"),
    "figures": ("facemorphic.report.cli", "the report's figures: per-AU bars beside the paper, "
                                                      "training curves, per-user sanity panels"),
    "predict": ("facemorphic.predict.cli", "apply a trained run to a new recording: per-frame AU probabilities, "
                                           "coefficients, the paper's Figure 3 as a video"),
}


def build_parser(stage: str | None = None) -> argparse.ArgumentParser:
    """The command's parser; only the chosen ``stage``'s module is imported (others cost nothing)."""
    parser = argparse.ArgumentParser(
        prog="facemorphic",
        description="Neuromorphic facial Action Unit analysis with cross-modal supervision.",
    )
    parser.add_argument("--version", action="version", version=f"facemorphic {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="stage", metavar="STAGE")
    sub.required = True
    for name, (module_name, help_text) in STAGES.items():
        stage_parser = sub.add_parser(name, help=help_text, description=help_text)
        stage_parser.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                                  help="debug logging")
        if name == stage:
            importlib.import_module(module_name).add_arguments(stage_parser)
        stage_parser.set_defaults(_module=module_name)
    return parser


def configure_logging(verbose: bool = False) -> None:
    """Log to stderr with timestamps; Snakemake rules redirect it into the rule's log file."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
        force=True,
    )


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    stage = next((arg for arg in argv if not arg.startswith("-")), None)
    args = build_parser(stage).parse_args(argv)
    configure_logging(args.verbose)
    module = importlib.import_module(args._module)
    try:
        return int(module.run(args) or 0)
    except FacemorphicError as exc:
        logging.getLogger("facemorphic").error("%s", exc)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
