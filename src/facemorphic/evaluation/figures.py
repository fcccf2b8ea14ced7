"""Confusion-matrix figures: one PNG per experiment, test predictions summed over its seeds."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .. import ACTION_UNITS
from ..fileio import atomic_path


def confusion_matrix(labels: np.ndarray, predicted: np.ndarray, n_classes: int = len(ACTION_UNITS)) -> np.ndarray:
    """Counts ``[true, predicted]``."""
    matrix = np.zeros((n_classes, n_classes), dtype=int)
    np.add.at(matrix, (labels, predicted), 1)
    return matrix


def save_confusion_figure(matrix: np.ndarray, title: str, path: str | Path) -> None:
    """Row-normalised confusion matrix (each true AU's predictions sum to 1), AU numbers on both axes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    totals = matrix.sum(axis=1, keepdims=True)
    normalised = np.divide(matrix, totals, out=np.zeros(matrix.shape, float), where=totals > 0)
    figure, axes = plt.subplots(figsize=(7.5, 6.5))
    image = axes.imshow(normalised, vmin=0, vmax=1, cmap="viridis")
    ticks = np.arange(len(ACTION_UNITS))
    axes.set_xticks(ticks, [str(au) for au in ACTION_UNITS], rotation=90, fontsize=7)
    axes.set_yticks(ticks, [str(au) for au in ACTION_UNITS], fontsize=7)
    axes.set_xlabel("predicted AU")
    axes.set_ylabel("true AU")
    axes.set_title(title, fontsize=9)
    figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04, label="fraction of true AU")
    figure.tight_layout()
    with atomic_path(path) as tmp:
        figure.savefig(tmp, dpi=120)
    plt.close(figure)
