"""68-point facial landmarks of RGB frames: backends (FAN, dlib, synthetic truth), tracking, files."""

from .backends import BACKENDS, LandmarkBackend, box_from_points, choose_face, make_backend
from .io import read_track_group, track_table, write_track_group
from .pipeline import TrackOptions, landmark_manifest, landmark_stream
from .tracking import LandmarkTrack, fill_gaps, smooth_track, track_video

__all__ = [
    "BACKENDS",
    "LandmarkBackend",
    "LandmarkTrack",
    "TrackOptions",
    "box_from_points",
    "choose_face",
    "fill_gaps",
    "landmark_manifest",
    "landmark_stream",
    "make_backend",
    "read_track_group",
    "smooth_track",
    "track_table",
    "track_video",
    "write_track_group",
]
