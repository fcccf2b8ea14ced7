"""``facemorphic evaluate``: the paper's tables and confusion figures from the runs' predictions."""

from __future__ import annotations


def add_arguments(parser) -> None:
    parser.add_argument("--runs", nargs="*", default=[], help="run folders (or their run.json files)")
    parser.add_argument("--runs-dir", default=None, help="also use every run folder found under this folder")
    parser.add_argument("--out-dir", required=True, help="folder for the tables (results/tables)")
    parser.add_argument("--figures-dir", default=None, help="results/figures (confusion matrices)")
    parser.add_argument("--split", default="test", help="which predictions to score")
    parser.add_argument("--data-source", default="unstated",
                        help="where the recordings came from (e.g. synthetic, real), written in every table row "
                             "(default: unstated)")
    parser.add_argument("--sweep-runs", nargs="*", default=[],
                        help="run folders of the L_alpha sweep (trained with val_fraction > 0); their val "
                             "predictions give table_lambda_sweep.csv (default: none)")
    parser.add_argument("--representation-runs", nargs="*", default=[], metavar="VARIANT=RUN_DIR",
                        help="run folders of the event representation study, each named by its variant; they "
                             "give table6_representations.csv, one row per variant in the order given "
                             "(default: none)")
    parser.add_argument("--representation-variants", default=None, metavar="JSON",
                        help="each variant's event-frame options as a JSON object {variant: {option: value}} "
                             "(the events options its frames were drawn with), written in its row "
                             "(default: none; the parameter columns are left empty)")


def run(args) -> int:
    from ..errors import FacemorphicError
    from .evaluate import evaluate_runs, find_runs, write_sweep_table

    run_dirs = list(args.runs) + (find_runs(args.runs_dir) if args.runs_dir else [])
    if args.representation_runs or args.representation_variants:
        from .representations import parse_variant_parameters, parse_variant_runs, write_representation_table

        if not args.representation_runs:
            raise FacemorphicError("--representation-variants needs --representation-runs")
        write_representation_table(parse_variant_runs(args.representation_runs), args.out_dir,
                                   parse_variant_parameters(args.representation_variants), args.split,
                                   args.data_source)
        if not run_dirs and not args.sweep_runs:
            return 0
    if not run_dirs and args.sweep_runs:
        write_sweep_table(args.sweep_runs, args.out_dir)
        return 0
    if not run_dirs:
        raise FacemorphicError("no run folders given (--runs, --runs-dir, --sweep-runs or --representation-runs)")
    evaluate_runs(run_dirs, args.out_dir, args.figures_dir, args.split, args.data_source, args.sweep_runs)
    return 0
