"""``facemorphic train``: one run (one experiment, one seed) into its own run folder.

The run's options are generated from :class:`~facemorphic.training.options.TrainOptions`; the workflow
passes an experiment's merged options as ``--options JSON``.
"""

from __future__ import annotations

from ..options import add_options
from .options import TrainOptions


def add_arguments(parser) -> None:
    parser.add_argument("--shards-dir", required=True, help="results/shards (one folder per split)")
    parser.add_argument("--out-dir", required=True, help="run folder, e.g. results/runs/{experiment}/seed-{seed}")
    parser.add_argument("--experiment", default="", help="experiment name recorded in run.json (default: none)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the run (default: 0)")
    parser.add_argument("--features-dir", default=None,
                        help="cached backbone features {dir}/{split}.h5 (ResNet-18 models only; default: none)")
    parser.add_argument("--predict-splits", nargs="+", default=["val", "test"],
                        help="splits whose predictions are written (default: val test)")
    parser.add_argument("--lambda-alpha-from", default=None,
                        help="take lambda_alpha from this L_alpha sweep table (table_lambda_sweep.csv): the lambda "
                             "it chose for this model and modality (default: the lambda_alpha option)")
    parser.add_argument("--lambda-alpha-model", default=None,
                        help="with --lambda-alpha-from: take the lambda chosen for this model on the run's modality "
                             "(one swept model choosing for all; default: the run's own model)")
    add_options(parser, TrainOptions, title="training options")


def run(args) -> int:
    from dataclasses import asdict

    import torch

    from ..options import options_from_args
    from .run import RunConfig, train_run

    options = options_from_args(TrainOptions, args)
    if args.lambda_alpha_from:
        from ..evaluation.sweep import chosen_lambda

        options.lambda_alpha = chosen_lambda(args.lambda_alpha_from, args.lambda_alpha_model or options.model,
                                             options.modality)
    torch.set_num_threads(options.threads)
    config = RunConfig(**asdict(options), shards_dir=args.shards_dir, out_dir=args.out_dir,
                       experiment=args.experiment, seed=args.seed, features_dir=args.features_dir,
                       predict_splits=list(args.predict_splits))
    train_run(config)
    return 0
