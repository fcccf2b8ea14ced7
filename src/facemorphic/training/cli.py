"""``facemorphic train``: one run (one experiment, one seed) into its own run folder."""

from __future__ import annotations

from ..models.factory import MODEL_NAMES


def add_arguments(parser) -> None:
    parser.add_argument("--shards-dir", required=True, help="results/shards (one folder per split)")
    parser.add_argument("--out-dir", required=True, help="run folder, e.g. results/runs/{experiment}/seed-{seed}")
    parser.add_argument("--experiment", default="", help="experiment name recorded in run.json")
    parser.add_argument("--model", choices=MODEL_NAMES, required=True)
    parser.add_argument("--modality", choices=("events", "rgb", "coefficients"), required=True)
    parser.add_argument("--lambda-alpha", type=float, default=0.0, help="weight of the per-frame coefficient loss")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--clip-length", type=int, default=75, help="frames per clip (L)")
    parser.add_argument("--eval-windows", choices=("center", "sliding"), default="center")
    parser.add_argument("--eval-stride", type=int, default=None, help="sliding window step (default L/2)")
    parser.add_argument("--features-dir", default=None,
                        help="cached backbone features {dir}/{split}.h5 (ResNet-18 models only)")
    parser.add_argument("--num-workers", type=int, default=2)
    parser.add_argument("--accelerator", default="auto", help="auto, cpu, gpu")
    parser.add_argument("--devices", default="auto", help="auto, or a number of devices")
    parser.add_argument("--precision", default="32-true", help="32-true, bf16-mixed (GPUs), 16-mixed")
    parser.add_argument("--strategy", default="auto", help="auto, ddp, ...")
    parser.add_argument("--resnet-weights", default=None, help="resnet18-f37072fd.pth (default: torch hub cache)")
    parser.add_argument("--i3d-weights", default=None, help="converted Kinetics I3D state dict (rgb_imagenet.pt)")
    parser.add_argument("--backbone-seed", type=int, default=0, help="init seed of a randomly initialised ResNet")
    parser.add_argument("--predict-splits", nargs="+", default=["val", "test"])
    parser.add_argument("--threads", type=int, default=0,
                        help="torch CPU threads (give the Snakemake rule's threads; 0: torch's default). "
                             "Several jobs each using every core slow each other down many times over")


def run(args) -> int:
    import torch

    from .run import RunConfig, train_run

    if args.threads > 0:
        torch.set_num_threads(args.threads)

    config = RunConfig(
        shards_dir=args.shards_dir, out_dir=args.out_dir, model=args.model, modality=args.modality,
        experiment=args.experiment, lambda_alpha=args.lambda_alpha, seed=args.seed, epochs=args.epochs,
        batch_size=args.batch_size, lr=args.lr, clip_length=args.clip_length, eval_windows=args.eval_windows,
        eval_stride=args.eval_stride, features_dir=args.features_dir, num_workers=args.num_workers,
        accelerator=args.accelerator, devices=args.devices, precision=args.precision, strategy=args.strategy,
        resnet_weights=args.resnet_weights, i3d_weights=args.i3d_weights, backbone_seed=args.backbone_seed,
        predict_splits=list(args.predict_splits),
    )
    train_run(config)
    return 0
