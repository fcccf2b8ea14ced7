"""Training-ready shards: per AU recording, resized event and RGB frames, coefficients, label."""

from .build import build_shards
from .frames import read_rgb_frames, resize_frames, to_three_channels
from .io import SHARD_FORMAT, ShardSample, list_samples, shard_files

__all__ = ["build_shards", "read_rgb_frames", "resize_frames", "to_three_channels", "SHARD_FORMAT",
           "ShardSample", "list_samples", "shard_files"]
