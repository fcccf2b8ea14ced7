"""Top-k accuracy, the one definition that training, the run's predictions and the tables all use.

A row is a top-k hit when fewer than k *other* classes have a logit greater than **or equal to** the true
class's logit: ties count against the true class, so a model that outputs the same value for every class
scores 0, not 100 %. A row with any non-finite logit (NaN, +-inf: a diverged model) is a miss, whatever
its ranks; :func:`nonfinite_rows` counts such rows so they can be reported instead of silently scored.

Written here rather than taken from ``torch.topk`` / ``sklearn.metrics.top_k_accuracy_score`` because both
break ties by position (a tie with a lower class index can make the true class a hit) and neither says
what happens with NaN.
"""

from __future__ import annotations

import numpy as np

#: The k of the paper's top-k accuracies.
TOPK = (1, 3, 5)


def _as_numpy(values) -> np.ndarray:
    """numpy view of an array or a (possibly CUDA, possibly grad-tracking) torch tensor."""
    if hasattr(values, "detach"):
        values = values.detach().float().cpu().numpy()
    return np.asarray(values)


def nonfinite_rows(logits) -> np.ndarray:
    """Boolean per row: does the row hold a NaN or infinite logit."""
    logits = _as_numpy(logits)
    return ~np.isfinite(logits).all(axis=1)


def topk_hits(logits, labels, k: int) -> np.ndarray:
    """Boolean per row of ``logits [N, C]``: is ``labels[i]`` a top-k class (ties and non-finite rows miss).

    Accepts numpy arrays or torch tensors; returns a numpy boolean array of length N.
    """
    logits = _as_numpy(logits).astype(np.float64, copy=False)
    labels = _as_numpy(labels).astype(np.int64, copy=False)
    if logits.ndim != 2 or labels.shape != (logits.shape[0],):
        raise ValueError(f"logits must be [N, C] and labels [N], got {logits.shape} and {labels.shape}")
    rows = np.arange(len(labels))
    true = logits[rows, labels]
    at_or_above = logits >= true[:, None]
    at_or_above[rows, labels] = False  # the true class does not rank above itself
    return (at_or_above.sum(axis=1) < k) & ~nonfinite_rows(logits)
