"""``facemorphic evaluate``: the paper's tables and confusion figures from the runs' predictions."""

from __future__ import annotations


def add_arguments(parser) -> None:
    parser.add_argument("--runs", nargs="*", default=[], help="run folders (or their run.json files)")
    parser.add_argument("--runs-dir", default=None, help="also use every run folder found under this folder")
    parser.add_argument("--tables-dir", required=True, help="results/tables")
    parser.add_argument("--figures-dir", default=None, help="results/figures (confusion matrices)")
    parser.add_argument("--split", default="test", help="which predictions to score")
    parser.add_argument("--data-source", default="unstated",
                        help="where the recordings came from (e.g. synthetic, real), written in every table row "
                             "(default: unstated)")
    parser.add_argument("--sweep-runs", nargs="*", default=[],
                        help="run folders of the L_alpha sweep (trained with val_fraction > 0); their val "
                             "predictions give table_lambda_sweep.csv (default: none)")


def run(args) -> int:
    from ..errors import FacemorphicError
    from .evaluate import evaluate_runs, find_runs, write_sweep_table

    run_dirs = list(args.runs) + (find_runs(args.runs_dir) if args.runs_dir else [])
    if not run_dirs and args.sweep_runs:
        write_sweep_table(args.sweep_runs, args.tables_dir)
        return 0
    if not run_dirs:
        raise FacemorphicError("no run folders given (--runs or --runs-dir)")
    evaluate_runs(run_dirs, args.tables_dir, args.figures_dir, args.split, args.data_source, args.sweep_runs)
    return 0
