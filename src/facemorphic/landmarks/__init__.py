"""68-point facial landmarks of RGB frames: backends (FAN, dlib, synthetic truth), tracking, files."""

from __future__ import annotations

from .._lazy import lazy_exports

#: name -> the submodule that defines it, imported on first use (see facemorphic._lazy)
_EXPORTS = {name: module for module, names in {
    ".backends": ("BACKENDS", "LandmarkBackend", "box_from_points", "choose_face", "make_backend"),
    ".io": ("read_track_group", "track_table", "write_track_group"),
    ".pipeline": ("TrackOptions", "landmark_manifest", "landmark_stream"),
    ".tracking": ("LandmarkTrack", "fill_gaps", "smooth_track", "track_video"),
}.items() for name in names}
__all__ = list(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
