"""Lightning training: clip datasets over the shards, the loss and metrics, the feature cache, one run."""

from .data import ClipDataset, ShardDataModule, window_indices, window_starts
from .module import AUModule, masked_frame_mse, topk_correct
from .run import RunConfig, train_run

__all__ = ["ClipDataset", "ShardDataModule", "window_indices", "window_starts", "AUModule", "masked_frame_mse",
           "topk_correct", "RunConfig", "train_run"]
