"""I3D: the single-stream Inception-v1 network inflated to 3D (Carreira & Zisserman, CVPR 2017).

Written here from the published architecture (torchvision ships no I3D; pytorchvideo's and mmaction2's
"I3D" are inflated ResNet-50s, a different network). Layer names, TF-"SAME" padding and BatchNorm
settings follow the layout of the widely used Kinetics conversion (``rgb_imagenet.pt``), so those weights
load into :class:`InceptionI3d` when a path is given (``load_kinetics_weights``); nothing is downloaded.

For a 75 x 224 x 224 clip the endpoints are, as (C, T, H, W): Conv3d_1a_7x7 64,38,112,112;
MaxPool3d_2a_3x3 64,38,56,56; Conv3d_2c_3x3 192,38,56,56; MaxPool3d_3a_3x3 192,38,28,28; Mixed_3c
480,38,28,28; MaxPool3d_4a_3x3 480,19,14,14; Mixed_4f 832,19,14,14; MaxPool3d_5a_2x2 832,10,7,7;
Mixed_5c 1024,10,7,7. The original's fixed 2x7x7 average pool is replaced by adaptive average pooling so
that small inputs (112 x 112, the synthetic data's 32 x 32) work.

:class:`I3DClassifier` is the paper's use of it: the clip (pixels scaled to [-1, 1], RGB) becomes the
1024-d average-pooled Mixed_5c feature, read by the paper's two heads, each FC 128 -> ReLU -> output as
in the ResNet-18 models: classification (24 AUs) and regression of all L x 32 per-frame coefficients at
once.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import InputFileError
from .sequence import head

log = logging.getLogger(__name__)


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow "SAME" padding (front, back) for one dimension: output size ceil(size / stride)."""
    if size % stride == 0:
        total = max(kernel - stride, 0)
    else:
        total = max(kernel - size % stride, 0)
    return total // 2, total - total // 2


def pad_same(x: torch.Tensor, kernel: tuple[int, int, int], stride: tuple[int, int, int]) -> torch.Tensor:
    """Pad a ``[B, C, T, H, W]`` tensor with zeros so a convolution/pool gives SAME output sizes."""
    pads = []
    for size, k, s in zip(reversed(x.shape[2:]), reversed(kernel), reversed(stride)):
        pads.extend(same_padding(size, k, s))
    return F.pad(x, pads)


def pointwise_conv3d(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """A 1x1x1, stride-1 Conv3d without bias as one batched matrix product over the channels.

    The same sums as ``F.conv3d`` (float rounding may differ in the last bits); written out because PyTorch
    sends 1x1x1 3D convolutions on the CPU to its unvectorised ``slow_conv3d`` path, whose forward and
    backward took more than half of an I3D training step at the CPU default's small inputs (37 of the
    network's 57 convolutions are 1x1x1). As matrix products a step (batch 8, 16 px) took 0.2 s instead of
    0.3 s on one core, and an epoch of the default run about 15% less; a GPU's BLAS serves them as well as
    its convolution library."""
    batch, channels = x.shape[:2]
    out = torch.matmul(weight.view(weight.shape[0], channels), x.reshape(batch, channels, -1))
    return out.view(batch, weight.shape[0], *x.shape[2:])


class Unit3D(nn.Module):
    """Conv3d (no bias) with SAME padding -> BatchNorm3d(eps 1e-3) -> ReLU (momentum: see InceptionI3d).

    1x1x1 convolutions run as :func:`pointwise_conv3d` (the ``conv3d`` weight is the same parameter)."""

    def __init__(self, in_channels: int, out_channels: int, kernel=(1, 1, 1), stride=(1, 1, 1)):
        super().__init__()
        self.kernel, self.stride = tuple(kernel), tuple(stride)
        self.conv3d = nn.Conv3d(in_channels, out_channels, self.kernel, self.stride, bias=False)
        self.bn = nn.BatchNorm3d(out_channels, eps=1e-3)
        self.pointwise = self.kernel == (1, 1, 1) and self.stride == (1, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pointwise:
            return F.relu(self.bn(pointwise_conv3d(x, self.conv3d.weight)))
        return F.relu(self.bn(self.conv3d(pad_same(x, self.kernel, self.stride))))


class MaxPool3dSame(nn.Module):
    """3D max pooling with SAME padding (zero padding is exact here: inputs follow a ReLU)."""

    def __init__(self, kernel, stride):
        super().__init__()
        self.kernel, self.stride = tuple(kernel), tuple(stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.max_pool3d(pad_same(x, self.kernel, self.stride), self.kernel, self.stride)


class InceptionModule(nn.Module):
    """Four branches, concatenated: 1x1x1; 1x1x1 -> 3x3x3; 1x1x1 -> 3x3x3; 3x3x3 max pool -> 1x1x1."""

    def __init__(self, in_channels: int, widths: tuple[int, int, int, int, int, int]):
        super().__init__()
        self.b0 = Unit3D(in_channels, widths[0])
        self.b1a = Unit3D(in_channels, widths[1])
        self.b1b = Unit3D(widths[1], widths[2], (3, 3, 3))
        self.b2a = Unit3D(in_channels, widths[3])
        self.b2b = Unit3D(widths[3], widths[4], (3, 3, 3))
        self.b3a = MaxPool3dSame((3, 3, 3), (1, 1, 1))
        self.b3b = Unit3D(in_channels, widths[5])
        self.out_channels = widths[0] + widths[2] + widths[4] + widths[5]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.b0(x), self.b1b(self.b1a(x)), self.b2b(self.b2a(x)), self.b3b(self.b3a(x))], dim=1)


#: (endpoint name, in channels, branch widths) of the nine Inception modules.
MIXED_WIDTHS = {
    "Mixed_3b": (192, (64, 96, 128, 16, 32, 32)),
    "Mixed_3c": (256, (128, 128, 192, 32, 96, 64)),
    "Mixed_4b": (480, (192, 96, 208, 16, 48, 64)),
    "Mixed_4c": (512, (160, 112, 224, 24, 64, 64)),
    "Mixed_4d": (512, (128, 128, 256, 24, 64, 64)),
    "Mixed_4e": (512, (112, 144, 288, 32, 64, 64)),
    "Mixed_4f": (528, (256, 160, 320, 32, 128, 128)),
    "Mixed_5b": (832, (256, 160, 320, 32, 128, 128)),
    "Mixed_5c": (832, (384, 192, 384, 48, 128, 128)),
}


class InceptionI3d(nn.Module):
    """The I3D trunk up to Mixed_5c: ``[B, 3, T, H, W]`` -> ``[B, 1024, ceil(T/8), ceil(H/32), ceil(W/32)]``.

    ``bn_momentum`` is PyTorch's (weight of the new batch in the running statistics). The original's 0.01
    (TensorFlow decay 0.99) suits a schedule of 100k steps; over the few hundred steps of a run here the
    running statistics would still be near their initial values, and the network evaluated with them
    scores at chance although it fits its training clips, so the default is PyTorch's 0.1.
    """

    out_channels = 1024

    def __init__(self, in_channels: int = 3, bn_momentum: float = 0.1):
        super().__init__()
        layers: list[tuple[str, nn.Module]] = [
            ("Conv3d_1a_7x7", Unit3D(in_channels, 64, (7, 7, 7), (2, 2, 2))),
            ("MaxPool3d_2a_3x3", MaxPool3dSame((1, 3, 3), (1, 2, 2))),
            ("Conv3d_2b_1x1", Unit3D(64, 64)),
            ("Conv3d_2c_3x3", Unit3D(64, 192, (3, 3, 3))),
            ("MaxPool3d_3a_3x3", MaxPool3dSame((1, 3, 3), (1, 2, 2))),
        ]
        for name in ("Mixed_3b", "Mixed_3c"):
            layers.append((name, InceptionModule(*MIXED_WIDTHS[name])))
        layers.append(("MaxPool3d_4a_3x3", MaxPool3dSame((3, 3, 3), (2, 2, 2))))
        for name in ("Mixed_4b", "Mixed_4c", "Mixed_4d", "Mixed_4e", "Mixed_4f"):
            layers.append((name, InceptionModule(*MIXED_WIDTHS[name])))
        layers.append(("MaxPool3d_5a_2x2", MaxPool3dSame((2, 2, 2), (2, 2, 2))))
        for name in ("Mixed_5b", "Mixed_5c"):
            layers.append((name, InceptionModule(*MIXED_WIDTHS[name])))
        for name, module in layers:
            self.add_module(name, module)
        self.endpoint_names = [name for name, _ in layers]
        for module in self.modules():
            if isinstance(module, nn.BatchNorm3d):
                module.momentum = bn_momentum

    def endpoints(self, x: torch.Tensor) -> "OrderedDict[str, torch.Tensor]":
        """Every endpoint's output, in order (for inspection and the layer-size tests)."""
        outputs = OrderedDict()
        for name in self.endpoint_names:
            x = getattr(self, name)(x)
            outputs[name] = x
        return outputs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for name in self.endpoint_names:
            x = getattr(self, name)(x)
        return x

    def load_kinetics_weights(self, path: str | Path) -> None:
        """Load a converted Kinetics/ImageNet I3D state dict (``rgb_imagenet.pt`` layout), its logits dropped."""
        path = Path(path)
        if not path.is_file():
            raise InputFileError(path, "I3D weight file not found")
        state = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(state, dict):
            raise InputFileError(path, "not a state dict")
        state = {k: v for k, v in state.items() if not k.startswith("logits.")}
        try:
            self.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise InputFileError(path, f"does not match the I3D Inception-v1 layout: {exc}") from exc
        log.info("I3D: loaded pretrained weights from %s", path)


class I3DClassifier(nn.Module):
    """I3D trunk -> adaptive average pool -> 1024-d clip feature -> two FC 128 heads: AU logits, L x K alpha.

    ``clip_length`` is fixed at construction because the regression head predicts all L x K values at
    once, as in the paper. The whole network is trained (no frozen backbone, no feature cache).

    ``input_size`` and ``frame_step`` make it affordable on a CPU: the trunk sees every ``frame_step``-th
    frame, area-resized to ``input_size`` pixels (0: the frames as given); the heads still classify the clip
    and regress all L frames' coefficients. With 1 and 0 it is the paper's network on the shard frames.
    """

    frozen_backbone = False
    backbone_name = "i3d"

    def __init__(self, clip_length: int, n_classes: int = 24, n_coefficients: int = 32, dropout: float = 0.5,
                 weights_path: str | Path | None = None, input_size: int = 0, frame_step: int = 1):
        super().__init__()
        if input_size < 0 or frame_step < 1:
            raise ValueError(f"input_size must be >= 0 and frame_step >= 1, got {input_size} and {frame_step}")
        self.clip_length, self.n_coefficients = clip_length, n_coefficients
        self.input_size, self.frame_step = input_size, frame_step
        self.trunk = InceptionI3d()
        if weights_path:
            self.trunk.load_kinetics_weights(weights_path)
        self.pool = nn.AdaptiveAvgPool3d(1)
        self.dropout = nn.Dropout(dropout)
        self.classifier = head(InceptionI3d.out_channels, n_classes)
        self.regressor = head(InceptionI3d.out_channels, clip_length * n_coefficients)

    def trunk_input(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 ``[B, L, 3, H, W]`` -> the trunk's float ``[B, 3, T, S, S]`` in [-1, 1]: every
        ``frame_step``-th frame (T = ceil(L / frame_step)), area-resized to ``input_size`` when it is set."""
        clip = frames[:, ::self.frame_step].float() * (2.0 / 255.0) - 1.0
        if self.input_size and clip.shape[-2:] != (self.input_size, self.input_size):
            batch, length = clip.shape[:2]
            clip = F.interpolate(clip.flatten(0, 1), size=(self.input_size, self.input_size), mode="area")
            clip = clip.view(batch, length, *clip.shape[1:])
        return clip.permute(0, 2, 1, 3, 4)

    def forward(self, frames: torch.Tensor):
        """uint8 frames ``[B, L, 3, H, W]`` -> (logits ``[B, 24]``, alpha ``[B, L, K]``)."""
        batch, length = frames.shape[:2]
        if length != self.clip_length:
            raise ValueError(f"I3D was built for clips of {self.clip_length} frames, got {length}")
        clip = self.trunk_input(frames)
        feature = self.dropout(self.pool(self.trunk(clip)).flatten(1))
        alpha = self.regressor(feature).view(batch, self.clip_length, self.n_coefficients)
        return self.classifier(feature), alpha

