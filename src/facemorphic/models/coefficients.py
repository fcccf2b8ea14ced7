"""Coefficient-only AU classifiers (the paper's Table 2 control).

They see no pixels: the input is the per-frame sequence of fitted 3DMM AU coefficients ``[B, L, K]``
with its validity mask ``[B, L]`` (frames without a face fit). Invalid frames are zeroed and, for the
Transformer, masked out of attention; the LSTM reads the zeros (a fit gap carries no coefficients).
:class:`~facemorphic.training.module.AUModule` hands them the coefficients standardised per component
with the training set's mean and std (so a zero is the mean face): one affine map for all frames, which
keeps each frame's magnitude (how strongly the AU is expressed), where normalising each frame's 32 values
would throw it away. Fitted coefficients of unit-norm atoms are a few hundredths; raw, they leave an
LSTM's gates nearly still and the runs at chance.
They return ``(logits, None)``: no per-frame regression, so their loss is the cross-entropy alone.
"""

from __future__ import annotations

import torch
from torch import nn

from .sequence import sinusoidal_positions


class CoefficientTransformer(nn.Module):
    """Transformer with 2 encoder and 2 decoder layers, 2 heads, over the coefficient sequence.

    The coefficients are embedded linearly (with LayerNorm, since fitted coefficients have arbitrary
    scales) and position-coded; one learned query token goes through the decoder against the encoded
    sequence and its output is classified.
    """

    frozen_backbone = False
    backbone_name = "none"

    def __init__(self, n_coefficients: int = 32, n_classes: int = 24, d_model: int = 64, heads: int = 2,
                 encoder_layers: int = 2, decoder_layers: int = 2, feedforward: int = 256, dropout: float = 0.1):
        super().__init__()
        self.embed = nn.Sequential(nn.Linear(n_coefficients, d_model), nn.LayerNorm(d_model))
        self.query = nn.Parameter(torch.zeros(1, 1, d_model))
        nn.init.normal_(self.query, std=0.02)
        encoder = nn.TransformerEncoder(
            nn.TransformerEncoderLayer(d_model, heads, feedforward, dropout, batch_first=True), encoder_layers,
            norm=nn.LayerNorm(d_model), enable_nested_tensor=False)
        self.transformer = nn.Transformer(d_model, heads, encoder_layers, decoder_layers, feedforward, dropout,
                                          custom_encoder=encoder, batch_first=True)
        self.classifier = nn.Linear(d_model, n_classes)

    def forward(self, coefficients: torch.Tensor, valid: torch.Tensor):
        valid = valid.bool()
        # a clip with no valid frame attends to every (zero) frame instead of to nothing (NaN)
        valid = valid | ~valid.any(dim=1, keepdim=True)
        x = coefficients.float() * valid.unsqueeze(-1)
        tokens = self.embed(x) + sinusoidal_positions(x.shape[1], self.query.shape[-1], x.device)
        query = self.query.expand(x.shape[0], -1, -1)
        padding = ~valid
        decoded = self.transformer(tokens, query, src_key_padding_mask=padding, memory_key_padding_mask=padding)
        return self.classifier(decoded[:, 0]), None


class CoefficientLSTM(nn.Module):
    """One LSTM layer with 256 hidden units over the (standardised) coefficient sequence; the final state
    is classified."""

    frozen_backbone = False
    backbone_name = "none"

    def __init__(self, n_coefficients: int = 32, n_classes: int = 24, hidden: int = 256):
        super().__init__()
        self.lstm = nn.LSTM(n_coefficients, hidden, num_layers=1, batch_first=True)
        self.classifier = nn.Linear(hidden, n_classes)

    def forward(self, coefficients: torch.Tensor, valid: torch.Tensor):
        x = coefficients.float() * valid.unsqueeze(-1).float()
        _, (hidden, _) = self.lstm(x)
        return self.classifier(hidden[-1]), None
