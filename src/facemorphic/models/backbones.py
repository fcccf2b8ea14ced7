"""The frozen ResNet-18 trunk that turns each frame into a 512-d feature.

The weights are torchvision's ImageNet ``IMAGENET1K_V1`` file ``resnet18-f37072fd.pth``. The pipeline
never downloads: the file is looked for at an explicit path, then in torch's hub cache
(``$TORCH_HOME/hub/checkpoints``), and loaded with ``torch.load(weights_only=True)``. Without it the trunk
is randomly initialised from a fixed seed (``init_seed``), with a loud warning, so that every run and the
feature cache still share one and the same backbone.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch import nn

from ..errors import InputFileError

log = logging.getLogger(__name__)

RESNET18_WEIGHTS_FILE = "resnet18-f37072fd.pth"
#: ImageNet statistics the torchvision weights were trained with (RGB, pixels in [0, 1]).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
RESNET18_FEATURE_DIM = 512


def find_resnet18_weights(weights_path: str | Path | None = None) -> Path | None:
    """Return the ImageNet ResNet-18 weight file to use, or None when none is available.

    An explicit ``weights_path`` must exist (a wrong config path is an error, not a silent fallback);
    otherwise the hub cache ``torch.hub.get_dir()/checkpoints/resnet18-f37072fd.pth`` is used if present.
    """
    if weights_path:
        path = Path(weights_path)
        if not path.is_file():
            raise InputFileError(path, "ResNet-18 weight file not found")
        return path
    cached = Path(torch.hub.get_dir()) / "checkpoints" / RESNET18_WEIGHTS_FILE
    return cached if cached.is_file() else None


def build_resnet18_trunk(weights_path: str | Path | None = None, init_seed: int = 0) -> tuple[nn.Module, str]:
    """ResNet-18 without its classifier (frames ``[N, 3, H, W]`` float -> ``[N, 512]``), and a description.

    The description (``imagenet:<file>`` or ``random-init:seed=<n>``) is stored with cached features so a
    cache is never reused with a different backbone.
    """
    from torchvision.models import resnet18

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(init_seed)
        net = resnet18(weights=None)
    path = find_resnet18_weights(weights_path)
    if path is not None:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            net.load_state_dict(state)
        except Exception as exc:  # a corrupt or foreign file: name it
            raise InputFileError(path, f"not a torchvision ResNet-18 state dict ({exc})") from exc
        description = f"imagenet:{path.name}"
        log.info("ResNet-18 trunk: ImageNet weights from %s", path)
    else:
        description = f"random-init:seed={init_seed}"
        hub = Path(torch.hub.get_dir()) / "checkpoints" / RESNET18_WEIGHTS_FILE
        log.warning(
            "!!! ResNet-18 ImageNet weights not found: the frozen backbone is RANDOMLY INITIALISED "
            "(seed %d). Place %s at %s (or pass its path) to use the paper's pretrained backbone. !!!",
            init_seed, RESNET18_WEIGHTS_FILE, hub,
        )
    net.fc = nn.Identity()
    return net, description


class FrozenFrameEncoder(nn.Module):
    """Per-frame ResNet-18 features with every parameter frozen and BatchNorm kept in eval mode.

    Input uint8 frames ``[B, L, 3, H, W]`` (RGB order); output float ``[B, L, 512]``. Frames are scaled
    to [0, 1] and normalised with the ImageNet statistics here, inside the model, so cached features and
    the uncached path compute the same thing. ``train()`` never switches the trunk out of eval mode:
    a frozen backbone whose BatchNorm statistics drifted would not be frozen.
    """

    feature_dim = RESNET18_FEATURE_DIM

    def __init__(self, weights_path: str | Path | None = None, init_seed: int = 0):
        super().__init__()
        self.trunk, self.description = build_resnet18_trunk(weights_path, init_seed)
        for parameter in self.trunk.parameters():
            parameter.requires_grad_(False)
        self.trunk.eval().to(memory_format=torch.channels_last)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def train(self, mode: bool = True):
        super().train(mode)
        self.trunk.eval()
        return self

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        batch, length = frames.shape[:2]
        flat = frames.reshape(batch * length, *frames.shape[2:])
        images = (flat.float() / 255.0 - self.mean) / self.std
        with torch.no_grad():
            features = self.trunk(images.contiguous(memory_format=torch.channels_last))
        return features.float().reshape(batch, length, -1)
