"""``facemorphic figures``: the report's figures (per-AU bars beside the paper, training curves, per-user
sanity panels), one subcommand each; :mod:`facemorphic.report.figures` draws them."""

from __future__ import annotations

DATA_SOURCE_HELP = ("where the recordings came from (synthetic, folder, ...), stated in the title when it is "
                    "synthetic (default: unstated)")


def add_arguments(parser) -> None:
    figures = parser.add_subparsers(dest="figure", metavar="FIGURE")
    figures.required = True

    per_au = figures.add_parser("per-au", help="top-1 per AU beside the paper's Table 4, one panel per experiment")
    per_au.add_argument("--table", required=True, help="results/tables/table4_per_au.csv")
    per_au.add_argument("--out", required=True, help="the PNG to write")

    curves = figures.add_parser("curves", help="one experiment's loss and top-1 per epoch, train and validation")
    curves.add_argument("--runs", nargs="+", required=True, help="the experiment's run folders (one per seed)")
    curves.add_argument("--experiment", required=True, help="the experiment's name (the title)")
    curves.add_argument("--data-source", default="unstated", help=DATA_SOURCE_HELP)
    curves.add_argument("--out", required=True, help="the PNG to write")

    sanity = figures.add_parser("sanity", help="one user's RGB frame with landmarks, event frame and fitted mesh "
                                               "(middle frame of the first AU recording)")
    sanity.add_argument("--user", required=True, help="the user's id (the title)")
    sanity.add_argument("--manifest", required=True, help="results/manifest/{user}.csv")
    sanity.add_argument("--landmarks", required=True, help="results/landmarks/{user}.h5")
    sanity.add_argument("--events", required=True, help="results/events/{user}.h5")
    sanity.add_argument("--coefficients", required=True, help="results/coefficients/{user}.h5")
    sanity.add_argument("--model", required=True, help="results/morphable/model.h5")
    sanity.add_argument("--data-source", default="unstated", help=DATA_SOURCE_HELP)
    sanity.add_argument("--out", required=True, help="the PNG to write")


def run(args) -> int:
    from . import figures

    if args.figure == "per-au":
        figures.save_per_au_figure(figures.read_per_au_table(args.table), args.out)
    elif args.figure == "curves":
        figures.save_training_curves(args.runs, args.experiment, args.data_source, args.out)
    else:
        sample = figures.load_sanity_frame(args.manifest, args.landmarks, args.events, args.coefficients, args.model)
        figures.save_sanity_panel(sample, args.user, args.data_source, args.out)
    return 0
