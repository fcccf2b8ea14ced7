"""``facemorphic features``: cache the frozen ResNet-18 feature of every frame of one modality."""

from __future__ import annotations


def add_arguments(parser) -> None:
    parser.add_argument("--shards-dir", required=True, help="results/shards (with one folder per split)")
    parser.add_argument("--modality", choices=("events", "rgb"), required=True)
    parser.add_argument("--out-dir", required=True,
                        help="writes {out-dir}/{split}.h5, e.g. results/features/resnet18/events")
    parser.add_argument("--splits", nargs="+", default=["train", "test"])
    parser.add_argument("--resnet-weights", default=None,
                        help="ImageNet resnet18-f37072fd.pth (default: torch hub cache; random init if absent)")
    parser.add_argument("--backbone-seed", type=int, default=0, help="init seed of a randomly initialised trunk")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    parser.add_argument("--batch-frames", type=int, default=256, help="frames per backbone call")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch CPU threads (give the Snakemake rule's threads; 0: torch's default). "
                             "Several jobs each using every core slow each other down many times over")


def run(args) -> int:
    from pathlib import Path

    import torch

    from ..models.backbones import FrozenFrameEncoder
    from .features import compute_split_features

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    encoder = FrozenFrameEncoder(args.resnet_weights, args.backbone_seed)
    for split in args.splits:
        compute_split_features(Path(args.shards_dir) / split, args.modality, Path(args.out_dir) / f"{split}.h5",
                               encoder, device, args.batch_frames)
    return 0
