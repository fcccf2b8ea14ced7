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
    "ingest": ("facemorphic.dataset.cli", "discover recordings, probe them, write per-user manifests and rejects"),
    "split": ("facemorphic.dataset.split_cli", "merge per-user manifests, assign the train/test split"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="facemorphic",
        description="Neuromorphic facial Action Unit analysis with cross-modal supervision.",
    )
    parser.add_argument("--version", action="version", version=f"facemorphic {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="stage", metavar="STAGE")
    sub.required = True
    for name, (module_name, help_text) in STAGES.items():
        module = importlib.import_module(module_name)
        stage_parser = sub.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(stage_parser)
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
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(args.verbose)
    module = importlib.import_module(args._module)
    try:
        return int(module.run(args) or 0)
    except FacemorphicError as exc:
        logging.getLogger("facemorphic").error("%s", exc)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
