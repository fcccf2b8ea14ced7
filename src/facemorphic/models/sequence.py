"""ResNet18+LSTM and ResNet18+Transformer: a frozen per-frame CNN, then a trainable sequence model.

Both follow the paper: the frozen ResNet-18 trunk gives a 512-d feature per frame, a trainable
projection (per-dimension BatchNorm, then linear) lifts it to 1024-d, a sequence model runs over the L
frames, and two heads read it: a per-frame regression head (FC 128 -> K=32 3DMM AU coefficients) and a
classification head (FC 128 -> 24 AUs) on the clip-level state (the LSTM's final hidden state; the
Transformer's CLS token).

Because the trunk is frozen, ``forward(frames)`` is exactly ``forward_features(encoder(frames))``; the
training stage uses that to train on cached per-frame features (``facemorphic features``).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .backbones import FrozenFrameEncoder

N_CLASSES = 24
N_COEFFICIENTS = 32


def head(in_dim: int, out_dim: int, hidden: int = 128) -> nn.Sequential:
    """The paper's heads: FC to 128, ReLU, FC to the outputs."""
    return nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, out_dim))


class FrameFeatureNorm(nn.BatchNorm1d):
    """BatchNorm over the feature dimension of ``[B, L, D]`` frame features (all B*L frames pooled).

    The paper does not say how its projection to 1024-d is built. Frozen trunk features vary little
    between clips compared with their per-dimension offsets (strongly so for a randomly initialised
    trunk): without standardising each dimension the LSTM stays at chance on data a linear probe
    separates perfectly; with it, it learns in a few epochs. It sits after the frozen trunk, so the
    feature cache is unaffected.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.reshape(-1, x.shape[-1])).reshape(x.shape)


class FrameSequenceModel(nn.Module):
    """Shared part of the two ResNet-18 models: frozen encoder, projection, the two heads."""

    frozen_backbone = True
    backbone_name = "resnet18"

    def __init__(self, sequence_dim: int, n_classes: int, n_coefficients: int, feature_dim: int,
                 weights_path=None, backbone_seed: int = 0):
        super().__init__()
        self.encoder = FrozenFrameEncoder(weights_path, backbone_seed)
        self.projection = nn.Sequential(FrameFeatureNorm(self.encoder.feature_dim),
                                        nn.Linear(self.encoder.feature_dim, feature_dim), nn.ReLU(inplace=True))
        self.classifier = head(sequence_dim, n_classes)
        self.regressor = head(sequence_dim, n_coefficients)

    @property
    def backbone_description(self) -> str:
        return self.encoder.description

    def forward(self, frames: torch.Tensor):
        """uint8 frames ``[B, L, 3, H, W]`` -> (logits ``[B, 24]``, alpha ``[B, L, K]``)."""
        return self.forward_features(self.encoder(frames))

    def forward_features(self, features: torch.Tensor):
        """Backbone features ``[B, L, 512]`` (live or cached) -> (logits, alpha)."""
        raise NotImplementedError


class ResNet18LSTM(FrameSequenceModel):
    """ResNet-18 (frozen) -> Linear 1024 -> 3-layer LSTM (256) -> per-frame and final-state heads."""

    def __init__(self, n_classes: int = N_CLASSES, n_coefficients: int = N_COEFFICIENTS, feature_dim: int = 1024,
                 hidden: int = 256, layers: int = 3, weights_path=None, backbone_seed: int = 0):
        super().__init__(hidden, n_classes, n_coefficients, feature_dim, weights_path, backbone_seed)
        self.lstm = nn.LSTM(feature_dim, hidden, num_layers=layers, batch_first=True)

    def forward_features(self, features: torch.Tensor):
        outputs, (hidden, _) = self.lstm(self.projection(features.float()))
        return self.classifier(hidden[-1]), self.regressor(outputs)


def sinusoidal_positions(length: int, dim: int, device=None) -> torch.Tensor:
    """Fixed sine/cosine position codes ``[length, dim]`` (Vaswani et al.), valid for any clip length."""
    position = torch.arange(length, device=device, dtype=torch.float32).unsqueeze(1)
    frequency = torch.exp(torch.arange(0, dim, 2, device=device, dtype=torch.float32) * (-math.log(10000.0) / dim))
    codes = torch.zeros(length, dim, device=device)
    codes[:, 0::2] = torch.sin(position * frequency)
    codes[:, 1::2] = torch.cos(position * frequency[: dim // 2])
    return codes


class ResNet18Transformer(FrameSequenceModel):
    """ResNet-18 (frozen) -> Linear 1024 -> Transformer encoder with a CLS token -> the same heads.

    The classification head reads the CLS token's output; the regression head reads each frame's token.
    The paper gives no layer count or width for this encoder; one layer of 1024-d tokens, 8 heads and a
    1024-wide feed-forward are the defaults here (a second layer doubles the cost of the CPU default run's
    runs and did not change their accuracy beyond the seed spread).
    """

    def __init__(self, n_classes: int = N_CLASSES, n_coefficients: int = N_COEFFICIENTS, feature_dim: int = 1024,
                 layers: int = 1, heads: int = 8, feedforward: int = 1024, dropout: float = 0.1,
                 weights_path=None, backbone_seed: int = 0):
        super().__init__(feature_dim, n_classes, n_coefficients, feature_dim, weights_path, backbone_seed)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, feature_dim))
        nn.init.normal_(self.cls_token, std=0.02)
        layer = nn.TransformerEncoderLayer(feature_dim, heads, feedforward, dropout, batch_first=True)
        self.transformer = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)

    def forward_features(self, features: torch.Tensor):
        tokens = self.projection(features.float())
        batch, length, dim = tokens.shape
        tokens = tokens + sinusoidal_positions(length, dim, tokens.device)
        tokens = torch.cat([self.cls_token.expand(batch, -1, -1), tokens], dim=1)
        encoded = self.transformer(tokens)
        return self.classifier(encoded[:, 0]), self.regressor(encoded[:, 1:])
