"""Training-ready shards: per AU recording, resized event and RGB frames (full view and face crop),
coefficients, label."""

from __future__ import annotations

from .._lazy import lazy_exports

#: name -> the submodule that defines it, imported on first use (see facemorphic._lazy)
_EXPORTS = {name: module for module, names in {
    ".build": ("ShardsResult", "run_shards"),
    ".face": ("face_track", "square_boxes"),
    ".frames": ("events_to_three_channels", "read_rgb_frames", "read_rgb_views", "resize_boxes", "resize_frames",
                "to_three_channels"),
    ".io": ("SHARD_FORMAT", "ShardSample", "list_samples", "shard_files"),
    ".options": ("ShardsOptions",),
}.items() for name in names}
__all__ = list(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
