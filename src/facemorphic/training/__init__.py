"""Lightning training: clip datasets over the shards, the loss and metrics, the feature cache, one run.

The names below are imported on first use (PEP 562), so ``facemorphic train --help`` and the workflow's
option checks (:mod:`facemorphic.training.options`) never import torch or Lightning.
"""

from __future__ import annotations

from .._lazy import lazy_exports

#: name -> the submodule that defines it, imported on first use (see facemorphic._lazy)
_EXPORTS = {name: module for module, names in {
    ".data": ("ClipDataset", "carve_validation", "ShardDataModule", "window_indices", "window_starts"),
    ".module": ("AUModule", "masked_frame_squared_error"),
    ".run": ("RunConfig", "train_run"),
}.items() for name in names}
__all__ = list(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
