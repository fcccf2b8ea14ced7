"""Run a trained network over a recording's frames in sliding windows of the run's clip length.

Windows are training's evaluation windows (:func:`facemorphic.training.data.window_starts`, ``sliding``,
and :func:`~facemorphic.training.data.window_indices`: a recording shorter than a clip repeats its last
frame). Per frame, the AU probabilities are the mean softmax of the windows that contain the frame and the
coefficients the mean of those windows' per-frame predictions for it; the recording's decision is the
argmax of the windows' mean softmax.

Models with a per-frame frozen encoder (the ResNet-18 models) encode each frame once, as frames arrive, and
keep only its features: the sequence heads then run over windows of features, which is what
``forward_features`` computes for the training's feature cache. Other frame models (I3D) keep the
model-size frames and run on whole windows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import numpy as np
import pandas as pd
import torch

from .. import ACTION_UNITS
from ..training.data import window_indices, window_starts

PROBABILITY_COLUMNS = [f"p_AU{au}" for au in ACTION_UNITS]


def alpha_columns(n_coefficients: int) -> list[str]:
    return [f"alpha_{k:02d}" for k in range(n_coefficients)]


@dataclass
class Prediction:
    """Per-frame outputs ``probabilities [T, 24]``, ``alpha [T, K]``, and per window ``window_starts``,
    ``window_probabilities [W, 24]``."""

    probabilities: np.ndarray
    alpha: np.ndarray
    window_starts: list[int]
    window_probabilities: np.ndarray

    @property
    def recording_probabilities(self) -> np.ndarray:
        return self.window_probabilities.mean(axis=0)

    def decision(self) -> dict:
        """The recording's AU: argmax of the mean window probabilities, with that probability."""
        mean = self.recording_probabilities
        best = int(mean.argmax())
        return {"au": int(ACTION_UNITS[best]), "label": best, "probability": float(mean[best]),
                "n_frames": int(len(self.probabilities)), "n_windows": int(len(self.window_starts))}


def frame_inputs(model, frame_blocks: Iterable[np.ndarray]) -> torch.Tensor:
    """Per-frame model inputs: encoder features ``[T, F]`` when the model has a frozen per-frame encoder,
    else the uint8 frames ``[T, 3, H, W]``."""
    encoder = getattr(model, "encoder", None) if getattr(model, "frozen_backbone", False) else None
    parts = []
    with torch.no_grad():
        for block in frame_blocks:
            frames = torch.from_numpy(np.ascontiguousarray(block))
            parts.append(encoder(frames[None])[0] if encoder is not None else frames)
    if not parts:
        raise ValueError("no frames to predict on")
    return torch.cat(parts)


def run_windows(model, inputs: torch.Tensor, clip_length: int, stride: int, batch_windows: int,
                n_coefficients: int) -> Prediction:
    """Sliding windows over per-frame ``inputs`` (from :func:`frame_inputs`) -> :class:`Prediction`."""
    n_frames = len(inputs)
    starts = window_starts(n_frames, clip_length, "sliding", stride or None)
    by_features = inputs.dtype != torch.uint8
    prob_sum = np.zeros((n_frames, len(ACTION_UNITS)))
    alpha_sum = np.zeros((n_frames, n_coefficients))
    counts = np.zeros(n_frames)
    window_probs = []
    with torch.no_grad():
        for first in range(0, len(starts), batch_windows):
            batch_starts = starts[first:first + batch_windows]
            indices = [window_indices(s, clip_length, n_frames) for s in batch_starts]
            clips = torch.stack([inputs[torch.from_numpy(idx)] for idx, _ in indices])
            logits, alpha = model.forward_features(clips) if by_features else model(clips)
            probs = torch.softmax(logits.double(), dim=1).numpy()
            alpha = alpha.double().numpy()
            for (idx, real), p, a in zip(indices, probs, alpha):
                frames = idx[real]
                prob_sum[frames] += p
                alpha_sum[frames] += a[real]
                counts[frames] += 1
            window_probs.append(probs)
    return Prediction(prob_sum / counts[:, None], alpha_sum / counts[:, None], starts, np.concatenate(window_probs))


def prediction_frame(prediction: Prediction, time_us: np.ndarray) -> pd.DataFrame:
    """The per-frame CSV: ``time_us``, ``p_AU*`` per AU, ``alpha_*`` per coefficient."""
    frame = pd.DataFrame({"time_us": np.asarray(time_us, dtype=np.int64)})
    for column, values in zip(PROBABILITY_COLUMNS, prediction.probabilities.T):
        frame[column] = values
    for column, values in zip(alpha_columns(prediction.alpha.shape[1]), prediction.alpha.T):
        frame[column] = values
    return frame
