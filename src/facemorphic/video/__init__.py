"""RGB video access: MP4 through PyAV and folders of timestamped JPEG frames, behind one interface."""

from __future__ import annotations

from .._lazy import lazy_exports

#: name -> the submodule that defines it, imported on first use (see facemorphic._lazy)
_EXPORTS = {name: module for module, names in {
    ".probe": ("RgbInfo", "parse_jpeg_frame_name", "probe_rgb", "read_frame_times"),
    ".reader": ("FrameBatch", "RgbReader", "open_rgb", "read_rgb_frames"),
    ".writer": ("write_mp4",),
}.items() for name in names}
__all__ = list(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
