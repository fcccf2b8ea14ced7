"""Options of ``facemorphic train`` and ``facemorphic features``; single source of their defaults.

One run's options are the ``training`` block overridden by the experiment's own keys (model, modality,
lambda_alpha and any of :data:`EXPERIMENT_OVERRIDABLE`), plus the trunk's ``features`` keys: the workflow
merges them into one JSON object per experiment (``experiment_options`` in workflow/rules/common.smk), so a
changed value reruns exactly that experiment's runs.
"""

from __future__ import annotations

from dataclasses import dataclass

from .. import MODALITIES, MODEL_INPUTS
from ..errors import FacemorphicError
from ..options import option

MODEL_NAMES = tuple(MODEL_INPUTS)
#: Keys of the training block an experiment may override.
EXPERIMENT_OVERRIDABLE = ("epochs", "batch_size", "lr", "clip_length")


@dataclass
class TrainOptions:
    """What one training run does (the run folder and the seed are given separately)."""

    model: str = option("resnet18_lstm", "the network", choices=MODEL_NAMES)
    modality: str = option("events", "what the network sees", choices=MODALITIES)
    lambda_alpha: float = option(0.0, "weight of the per-frame 3DMM coefficient loss L_alpha (0: off)", minimum=0)
    epochs: int = option(15, "training epochs (the maximum, with early stopping)", minimum=1)
    batch_size: int = option(8, "clips per batch (per process under DDP)", minimum=1)
    lr: float = option(1e-3, "Adam learning rate", minimum=1e-12)
    clip_length: int = option(30, "frames per clip L (the paper's 75 is 2.5 s at 30 fps; the synthetic AU "
                                  "recordings of the default run last 1.5 s)", minimum=1)
    eval_windows: str = option("center", "center: one deterministic window per recording; sliding: windows "
                                         "whose logits are averaged", choices=("center", "sliding"))
    eval_stride: int = option(0, "step of the sliding windows in frames (0: half a clip)", minimum=0)
    val_fraction: float = option(0.2, "share of the training recordings held out as the validation split (stratified "
                                      "by AU, seeded by val_seed); the checkpoint is the epoch with the best val "
                                      "top-1, epochs being the maximum (0: no validation, last epoch)",
                                 minimum=0.0, maximum=0.95)
    patience: int = option(4, "early stopping: end the run when the val top-1 has not improved for this many epochs "
                                   "(0: always train the maximum epochs); needs a validation split", minimum=0)
    val_seed: int = option(0, "seed of the validation carve-out (independent of the run seed: every run and lambda "
                              "is scored on the same recordings)")
    threads: int = option(1, "torch CPU threads of the job; fixed here, not taken from snakemake -c, so that "
                                 "a run's numbers never depend on -c (a different thread count can change the "
                                 "last bits of a sum, which training amplifies)", minimum=1)
    num_workers: int = option(1, "data-loader worker processes (only for splits too large to hold in memory)",
                              minimum=0)
    accelerator: str = option("auto", "Lightning accelerator", choices=("auto", "cpu", "gpu"))
    devices: str = option("auto", "Lightning devices: auto, or a number of devices")
    precision: str = option("32-true", "Lightning precision (bf16-mixed on GPUs)",
                            choices=("32-true", "bf16-mixed", "16-mixed"))
    strategy: str = option("auto", "Lightning strategy (ddp for several devices)",
                           choices=("auto", "ddp", "ddp_find_unused_parameters_true"))
    i3d_weights: str = option("", "converted Kinetics I3D state dict (rgb_imagenet.pt); empty: random init")
    i3d_input_size: int = option(16, "side in pixels of the frames I3D's trunk sees, area-resized from the shards "
                                     "(0: the shard frames as they are; the paper's 224 needs shards.size 224 and a "
                                     "GPU)", minimum=0)
    i3d_frame_step: int = option(3, "I3D's trunk sees every n-th frame of the clip (1: all, the paper's); the heads "
                                    "still classify the clip and regress every frame's coefficients", minimum=1)
    resnet_weights: str = option("", "ImageNet resnet18-f37072fd.pth; empty: torch's hub cache, random init if "
                                     "absent")
    backbone_seed: int = option(0, "initialisation seed of a randomly initialised ResNet-18 trunk")

    def check(self) -> None:
        wanted = MODEL_INPUTS[self.model]
        if (self.modality == "coefficients") != (wanted == "coefficients"):
            raise FacemorphicError(f"model {self.model!r} reads {wanted}, which modality {self.modality!r} "
                                   "does not give")
        devices = str(self.devices)
        if devices != "auto" and not (devices.isdigit() and int(devices) > 0):
            raise FacemorphicError(f"option 'devices': {self.devices!r} is neither 'auto' nor a positive number")


@dataclass(frozen=True)
class FeaturesOptions:
    """The frozen ResNet-18 feature cache of one modality."""

    resnet_weights: str = option("", "ImageNet resnet18-f37072fd.pth; empty: torch's hub cache, random init if "
                                     "absent")
    backbone_seed: int = option(0, "initialisation seed of a randomly initialised trunk")
    device: str = option("auto", "device of the backbone: auto (CUDA when present), cpu, cuda, cuda:N")
    batch_frames: int = option(256, "frames per backbone call", minimum=1)
    threads: int = option(1, "torch CPU threads of the job; fixed here, not taken from snakemake -c, so that "
                                 "a run's numbers never depend on -c (a different thread count can change the "
                                 "last bits of a sum, which training amplifies)", minimum=1)
