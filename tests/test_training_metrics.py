"""The one top-k definition: ties and non-finite logits are misses, against a slow obvious reference."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from facemorphic.metrics import nonfinite_rows, topk_hits


def reference_topk(logits, labels, k):
    """Slow and obvious: count, class by class, the other classes scoring at least the true one."""
    hits = []
    for row, label in zip(logits.tolist(), labels.tolist()):
        if not all(math.isfinite(value) for value in row):
            hits.append(False)
            continue
        above = sum(1 for c, value in enumerate(row) if c != label and value >= row[label])
        hits.append(above < k)
    return hits


@pytest.mark.parametrize("k", [1, 3, 5])
def test_topk_matches_the_reference_with_ties_and_non_finite_rows(k):
    rng = np.random.default_rng(4)
    logits = rng.integers(-3, 4, size=(300, 24)).astype(float)  # small integers: many ties
    logits[::17, 5] = np.nan
    logits[::23, 0] = np.inf
    logits[::29, 11] = -np.inf
    labels = rng.integers(0, 24, 300)
    expected = reference_topk(logits, labels, k)
    assert topk_hits(logits, labels, k).tolist() == expected
    # torch tensors give the same answer
    assert topk_hits(torch.from_numpy(logits).float(), torch.from_numpy(labels), k).tolist() == expected
    assert 0 < sum(expected) < len(expected)


def test_tied_and_nan_logits_are_misses():
    labels = np.array([0, 3, 7, 2])
    logits = np.zeros((4, 24))  # row 0: all tied
    logits[1, 3] = logits[1, 9] = 2.0  # row 1: true class tied with one other for first place
    logits[2] = np.nan  # row 2: a diverged model
    logits[3, 2] = 1.0  # row 3: a clear winner
    assert topk_hits(logits, labels, 1).tolist() == [False, False, False, True]
    assert topk_hits(logits, labels, 2).tolist() == [False, True, False, True]
    assert topk_hits(logits, labels, 24).tolist() == [True, True, False, True]
    assert nonfinite_rows(logits).tolist() == [False, False, True, False]


def test_shapes_are_checked():
    with pytest.raises(ValueError, match="logits must be"):
        topk_hits(np.zeros((3, 24)), np.zeros(4, int), 1)
