"""``facemorphic features``: cache the frozen ResNet-18 feature of every frame of one modality."""

from __future__ import annotations

from ..options import add_options
from ..shards.options import MODALITIES as FRAME_MODALITIES
from .options import FeaturesOptions


def add_arguments(parser) -> None:
    parser.add_argument("--shards-dir", required=True, help="results/shards (with one folder per split)")
    parser.add_argument("--modality", choices=FRAME_MODALITIES, required=True, help="which frames to encode")
    parser.add_argument("--out-dir", required=True,
                        help="writes {out-dir}/{split}.h5, e.g. results/features/resnet18/events")
    parser.add_argument("--splits", nargs="+", default=["train", "test"], help="splits to encode (default: train test)")
    add_options(parser, FeaturesOptions, title="feature cache options")


def run(args) -> int:
    from pathlib import Path

    import torch

    from ..models.backbones import FrozenFrameEncoder
    from ..options import options_from_args
    from .features import compute_split_features

    options = options_from_args(FeaturesOptions, args)
    torch.set_num_threads(options.threads)
    device = ("cuda" if torch.cuda.is_available() else "cpu") if options.device == "auto" else options.device
    encoder = FrozenFrameEncoder(options.resnet_weights or None, options.backbone_seed)
    for split in args.splits:
        compute_split_features(Path(args.shards_dir) / split, args.modality, Path(args.out_dir) / f"{split}.h5",
                               encoder, device, options.batch_frames)
    return 0
